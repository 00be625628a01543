"""E-reporting (issue 18 items 6-7): the periods reported to the tax authority through the PA.

A period is one report of one brand, one mode and one kind (transaction data or payment
data) over dates in the brand's time zone. Its totals are built from the issued documents
(invoices/ereporting/selectors.py) and frozen once submitted: rebuilding a submitted period
makes a new *version* that corrects it (the reform's corrective flow), the old one stays.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.modes import default_livemode


class Regime(models.TextChoices):
    """The brand's VAT regime: it sets the length of the e-reporting periods (docs/ereporting.md)."""

    NORMAL_MONTHLY = "normal_monthly", _("normal regime, monthly VAT returns")
    NORMAL_QUARTERLY = "normal_quarterly", _("normal regime, quarterly VAT returns")
    SIMPLIFIED = "simplified", _("simplified regime")
    FRANCHISE = "franchise", _("VAT franchise (franchise en base)")


class EReportingRegime(models.Model):
    """A brand's VAT regime for e-reporting; a brand without one is in the normal monthly regime."""

    brand = models.OneToOneField(
        "invoices.Brand", on_delete=models.CASCADE, related_name="ereporting_regime", verbose_name=_("brand")
    )
    regime = models.CharField(_("VAT regime"), max_length=20, choices=Regime.choices, default=Regime.NORMAL_MONTHLY)
    enabled = models.BooleanField(
        _("e-reporting enabled"), default=True, help_text=_("Closed periods are built and submitted automatically.")
    )

    class Meta:
        verbose_name = _("e-reporting regime")
        verbose_name_plural = _("e-reporting regimes")

    def __str__(self) -> str:
        return f"{self.brand} · {self.get_regime_display()}"


class EReportingPeriod(models.Model):
    class Kind(models.TextChoices):
        TRANSACTIONS = "transactions", _("transaction data")
        PAYMENTS = "payments", _("payment data")

    class State(models.TextChoices):
        DRAFT = "draft", _("draft")
        BUILT = "built", _("built")
        SUBMITTED = "submitted", _("submitted")
        ACCEPTED = "accepted", _("accepted")
        REJECTED = "rejected", _("rejected")
        CORRECTED = "corrected", _("corrected by a later version")

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="ereporting_periods", verbose_name=_("brand")
    )
    livemode = models.BooleanField(_("live mode"), default=default_livemode)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    start = models.DateField(_("first day"))
    end = models.DateField(_("last day"))
    version = models.PositiveIntegerField(_("version"), default=1)
    corrects = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="corrections",
        verbose_name=_("corrects"),
    )
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.DRAFT)
    totals = models.JSONField(_("totals"), default=dict, blank=True)
    content = models.BinaryField(_("flow content"), blank=True, default=b"")
    content_sha256 = models.CharField(_("flow sha256"), max_length=64, blank=True)
    tracking_id = models.CharField(_("tracking id"), max_length=100, blank=True)
    flow_id = models.CharField(_("PA flow id"), max_length=100, blank=True)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    submit_attempts = models.PositiveIntegerField(_("submission attempts"), default=0)
    built_at = models.DateTimeField(_("built"), null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("e-reporting period")
        verbose_name_plural = _("e-reporting periods")
        ordering = ["-start", "kind", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "livemode", "kind", "start", "version"], name="ereporting_period_unique_version"
            ),
            models.CheckConstraint(condition=Q(end__gte=models.F("start")), name="ereporting_period_ordered"),
        ]
        indexes = [models.Index(fields=["state", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.start:%Y-%m-%d} → {self.end:%Y-%m-%d} v{self.version}"

    @property
    def is_correction(self) -> bool:
        return self.corrects_id is not None


class EReportingStatus(models.Model):
    """Every state a period went through, with who said so (Tarif or the PA) and why."""

    class Origin(models.TextChoices):
        TARIF = "tarif", _("Tarif")
        PLATFORM = "platform", _("approved platform")

    period = models.ForeignKey(
        EReportingPeriod, on_delete=models.CASCADE, related_name="statuses", verbose_name=_("period")
    )
    state = models.CharField(_("state"), max_length=10, choices=EReportingPeriod.State.choices)
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices, default=Origin.TARIF)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("e-reporting status")
        verbose_name_plural = _("e-reporting statuses")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.period} {self.state}"
