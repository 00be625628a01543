"""Feedback surveys: what staff ask (Survey, Question, Choice), whom and when (Invitation),
what customers answered (SurveyResponse, Answer), and how far the event log was read
(events.EventCursor). See docs/feedback.md."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

LANGUAGES = ("fr", "en")


def pick(language: str, *, fr: str, en: str) -> str:
    """The text in `language`, the French one when that language is missing."""
    return en if language == "en" and en else fr


class Trigger(models.TextChoices):
    CANCELLATION = "cancellation", _("on cancellation")
    SUBSCRIPTION_STARTED = "subscription_started", _("N days after a subscription starts")
    PLAN_CHANGED = "plan_changed", _("N days after a plan change")
    FEATURE_USED = "feature_used", _("after a feature event (API)")
    PAYMENT_RECOVERED = "payment_recovered", _("after a recovered failed payment")
    MANUAL = "manual", _("manual (sent by staff)")


class Survey(models.Model):
    class ThrottleScope(models.TextChoices):
        GLOBAL = "global", _("any survey: at most one invitation per window")
        SURVEY = "survey", _("this survey only: at most one invitation of it per window")

    name = models.CharField(_("internal name"), max_length=120)
    title_fr = models.CharField(_("title (French)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200)
    intro_fr = models.TextField(_("introduction (French)"), blank=True)
    intro_en = models.TextField(_("introduction (English)"), blank=True)
    trigger = models.CharField(_("trigger"), max_length=24, choices=Trigger.choices, default=Trigger.MANUAL)
    delay_days = models.PositiveIntegerField(
        _("delay (days)"), default=0, help_text=_("Days after the triggering event before the invitation is sent.")
    )
    feature = models.SlugField(
        _("feature"), max_length=100, blank=True, help_text=_("For feature triggers: the feature key sent by the API.")
    )
    throttle_scope = models.CharField(
        _("throttling"), max_length=10, choices=ThrottleScope.choices, default=ThrottleScope.GLOBAL
    )
    throttle_days = models.PositiveIntegerField(
        _("throttling window (days)"),
        null=True,
        blank=True,
        help_text=_("Empty: TARIF_FEEDBACK_THROTTLE_DAYS."),
    )
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveIntegerField(
        _("order"), default=0, help_text=_("When several active surveys match a trigger, the lowest order wins.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.trigger == Trigger.FEATURE_USED and not self.feature:
            raise ValidationError({"feature": _("A feature trigger needs the feature key.")})
        if self.trigger != Trigger.FEATURE_USED and self.feature:
            raise ValidationError({"feature": _("Only feature triggers take a feature key.")})

    def title(self, language: str) -> str:
        return pick(language, fr=self.title_fr, en=self.title_en)

    def intro(self, language: str) -> str:
        return pick(language, fr=self.intro_fr, en=self.intro_en)


class Question(models.Model):
    class Kind(models.TextChoices):
        NPS = "nps", _("NPS (0-10)")
        CSAT = "csat", _("CSAT (1-5)")
        SINGLE = "single", _("single choice")
        MULTIPLE = "multiple", _("multiple choice")
        TEXT = "text", _("free text")

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="questions", verbose_name=_("survey"))
    position = models.PositiveIntegerField(_("order"), default=0)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    text_fr = models.CharField(_("question (French)"), max_length=300)
    text_en = models.CharField(_("question (English)"), max_length=300)
    required = models.BooleanField(_("required"), default=True)

    class Meta:
        verbose_name = _("question")
        verbose_name_plural = _("questions")
        ordering = ["survey", "position", "pk"]

    def __str__(self) -> str:
        return self.text_fr

    def text(self, language: str) -> str:
        return pick(language, fr=self.text_fr, en=self.text_en)

    @property
    def has_choices(self) -> bool:
        return self.kind in (self.Kind.SINGLE, self.Kind.MULTIPLE)


class Choice(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="choices", verbose_name=_("question"))
    position = models.PositiveIntegerField(_("order"), default=0)
    code = models.SlugField(_("code"), max_length=60, help_text=_("Stable key used in exports, e.g. too_expensive."))
    label_fr = models.CharField(_("label (French)"), max_length=200)
    label_en = models.CharField(_("label (English)"), max_length=200)

    class Meta:
        verbose_name = _("choice")
        verbose_name_plural = _("choices")
        ordering = ["question", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["question", "code"], name="feedback_choice_code_unique")]

    def __str__(self) -> str:
        return self.label_fr

    def label(self, language: str) -> str:
        return pick(language, fr=self.label_fr, en=self.label_en)


class Invitation(models.Model):
    """One trigger firing for one customer and survey: scheduled, then sent (or skipped).

    The unique (survey, customer, trigger_key) constraint is what makes a trigger fire
    once, whatever re-reads the event log or re-runs the scan. Sending is recorded first
    (`sending`, committed), then the email goes out with no transaction open, then the
    outcome is recorded: `sent`, or still `sending` with the error and the time of the
    next try, which the scan picks up (also after a crash between the commit and the
    email); `failed` after MAX_SEND_ATTEMPTS tries."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("scheduled")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed: the email could not be sent")
        ANSWERED = "answered", _("answered")
        THROTTLED = "throttled", _("skipped: asked recently")
        SKIPPED = "skipped", _("skipped")

    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="invitations", verbose_name=_("survey"))
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="survey_invitations", verbose_name=_("customer")
    )
    trigger = models.CharField(_("trigger"), max_length=24, choices=Trigger.choices)
    trigger_key = models.CharField(_("trigger key"), max_length=120)
    source_event = models.ForeignKey(
        "events.DomainEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("source event"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    due_at = models.DateTimeField(_("due at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("link expires at"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    language = models.CharField(_("language"), max_length=2, blank=True)
    email = models.EmailField(_("sent to"), blank=True)
    # sha256 of the link's random token: the token itself is only ever in the email.
    token_hash = models.CharField(_("token hash"), max_length=64, null=True, blank=True, unique=True, editable=False)
    skip_reason = models.CharField(_("why skipped"), max_length=200, blank=True)
    send_attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    # While `sending`: when the scan may try again (after a failure, or if the sender died).
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    send_error = models.CharField(_("last send error"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-due_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["survey", "customer", "trigger_key"], name="feedback_invitation_fires_once"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["status", "next_attempt_at"], name="feedback_inv_retry"),
            models.Index(fields=["customer", "sent_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.survey} → {self.customer} ({self.trigger_key})"


class SurveyResponse(models.Model):
    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="responses", verbose_name=_("survey"))
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="survey_responses", verbose_name=_("customer")
    )
    invitation = models.OneToOneField(
        Invitation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="response",
        verbose_name=_("invitation"),
    )
    subscription = models.ForeignKey(
        "billing.Subscription",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_responses",
        verbose_name=_("subscription"),
    )
    trigger = models.CharField(_("trigger"), max_length=24, choices=Trigger.choices)
    language = models.CharField(_("language"), max_length=2)
    submitted_at = models.DateTimeField(_("submitted at"), db_index=True)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("answered by")
    )

    class Meta:
        verbose_name = _("survey response")
        verbose_name_plural = _("survey responses")
        ordering = ["-submitted_at", "-pk"]
        indexes = [models.Index(fields=["customer", "submitted_at"])]

    def __str__(self) -> str:
        return f"{self.survey} – {self.customer} ({self.submitted_at:%Y-%m-%d})"


class Answer(models.Model):
    response = models.ForeignKey(SurveyResponse, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="answers")
    score = models.SmallIntegerField(_("score"), null=True, blank=True)
    choices = models.ManyToManyField(Choice, blank=True, related_name="answers", verbose_name=_("choices"))
    text = models.TextField(_("text"), blank=True)

    class Meta:
        verbose_name = _("answer")
        verbose_name_plural = _("answers")
        ordering = ["question__position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["response", "question"], name="feedback_answer_once_per_question"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=0, score__lte=10), name="feedback_answer_score_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question}: {self.score if self.score is not None else self.text}"
