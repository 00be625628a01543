"""Feedback in the operator console: surveys built by staff, invitations, responses
(searchable, exportable) and the reports page: headline NPS and answer counts first, then
Chart.js charts (specs from reports.charts, drawn by static/tarif/admin/reports.js), then
the tables."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import get_language, gettext_lazy, pgettext_lazy
from django.utils.translation import gettext as _
from import_export.admin import ExportMixin

from config.console import ImportExportPermissions, ReadOnlyAdminMixin, ReadOnlyInline, StyledAdmin, TabularInline
from config.console_export import ExportFieldsForm
from feedback import selectors
from feedback.models import Answer, Choice, Invitation, Question, Survey, SurveyResponse
from feedback.resources import SurveyResponseResource, answer_text
from reports.charts import NUMBER, PERCENT, Chart, Series, bar_chart, line_chart


def warn_choice_questions_without_choices(model_admin: Any, request: HttpRequest, questions: Any) -> None:
    for question in questions:
        if question.has_choices and question.choices.count() < 2:
            model_admin.message_user(
                request,
                _("“%(question)s” needs at least two choices: open the question and add them.")
                % {"question": question.text_fr},
                level="warning",
            )


class QuestionInline(TabularInline):
    model = Question
    extra = 1
    fields = ("position", "kind", "text_fr", "text_en", "required")
    show_change_link = True
    ordering = ("position", "pk")


@admin.register(Survey)
class SurveyAdmin(StyledAdmin):
    list_display = (
        "name",
        "trigger",
        "delay_days",
        "feature",
        "active",
        "position",
        "question_count",
        "response_count",
    )
    list_filter = ("trigger", "active")
    list_editable = ("active", "position")
    search_fields = ("name", "title_fr", "title_en")
    inlines = [QuestionInline]
    fieldsets = (
        (None, {"fields": ("name", "active", "position")}),
        (gettext_lazy("Texts"), {"fields": ("title_fr", "title_en", "intro_fr", "intro_en")}),
        (gettext_lazy("When to ask"), {"fields": ("trigger", "delay_days", "feature")}),
        (gettext_lazy("Throttling"), {"fields": ("throttle_scope", "throttle_days")}),
    )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        warn_choice_questions_without_choices(self, request, form.instance.questions.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[Survey]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                questions_total=Count("questions", distinct=True), responses_total=Count("responses", distinct=True)
            )
        )

    @admin.display(description=gettext_lazy("questions"), ordering="questions_total")
    def question_count(self, survey: Survey) -> int:
        return survey.questions_total

    @admin.display(description=gettext_lazy("responses"), ordering="responses_total")
    def response_count(self, survey: Survey) -> int:
        return survey.responses_total


class ChoiceInline(TabularInline):
    model = Choice
    extra = 2
    fields = ("position", "code", "label_fr", "label_en")
    ordering = ("position", "pk")

    def has_delete_permission(self, request: HttpRequest, obj: Question | None = None) -> bool:
        # Answers point at their choices: a choice somebody picked stays (rename it if needed).
        if obj is not None and obj.answers.exists():
            return False
        return super().has_delete_permission(request, obj)


class QuestionForm(forms.ModelForm):
    class Meta:
        model = Question
        fields = ("survey", "position", "kind", "text_fr", "text_en", "required")


@admin.register(Question)
class QuestionAdmin(StyledAdmin):
    form = QuestionForm
    list_display = ("text_fr", "survey", "kind", "position", "required")
    list_filter = ("survey", "kind")
    search_fields = ("text_fr", "text_en")
    inlines = [ChoiceInline]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        warn_choice_questions_without_choices(self, request, [form.instance])


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("customer", "survey", "trigger", "status", "due_at", "sent_at", "answered_at", "skip_reason")
    list_filter = ("status", "trigger", "survey")
    search_fields = ("customer__legal_name", "customer__email", "trigger_key")
    list_select_related = ("customer", "survey")
    date_hierarchy = "due_at"
    exclude = ("token_hash",)


class AnswerInline(ReadOnlyInline):
    model = Answer
    fields = ("question", "value")
    readonly_fields = ("question", "value")
    show_change_link = False

    @admin.display(description=gettext_lazy("answer"))
    def value(self, answer: Answer) -> str:
        return answer_text(answer, get_language()[:2])


PROMOTER, PASSIVE, DETRACTOR, BAR = "#1f8a4c", "#b8bfcc", "#c0392b", "#2851a3"
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _share(part: int, total: int) -> float:
    return round(100 * part / total, 1) if total else 0.0


class ReportFilterForm(forms.Form):
    # "From" alone is an email's sender in the catalogue ("Émetteur"): this one starts a period.
    start = forms.DateField(label=pgettext_lazy("period start", "From"), required=False, widget=DATE_INPUT)
    end = forms.DateField(label=gettext_lazy("To (excluded)"), required=False, widget=DATE_INPUT)
    survey = forms.ModelChoiceField(
        label=gettext_lazy("Survey"), queryset=Survey.objects.all(), required=False, empty_label="—"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["end"] <= cleaned["start"]:
            raise forms.ValidationError(_("The end date must come after the start date."))
        return cleaned


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ImportExportPermissions, ExportMixin, ReadOnlyAdminMixin, StyledAdmin):
    export_form_class = ExportFieldsForm  # the console's (ExportMixin would otherwise win the MRO)
    resource_classes = [SurveyResponseResource]
    list_display = ("submitted_at", "customer_link", "survey", "trigger", "language", "scores", "excerpt")
    list_filter = ("survey", "trigger", "language")
    list_select_related = ("customer", "survey")
    search_fields = ("customer__legal_name",)
    search_help_text = gettext_lazy("Searches the free-text answers and the customer's name.")
    date_hierarchy = "submitted_at"
    inlines = [AnswerInline]
    fields = ("survey", "customer", "subscription", "invitation", "trigger", "language", "submitted_at", "acting_user")
    readonly_fields = fields
    change_list_template = "admin/feedback/surveyresponse/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SurveyResponse]:
        return super().get_queryset(request).prefetch_related("answers__question", "answers__choices")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        by_name, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if not search_term.strip():
            return by_name, may_have_duplicates
        by_text = selectors.responses_matching_text(queryset=queryset, text=search_term)
        return queryset.filter(pk__in=by_name.values("pk")) | by_text, may_have_duplicates

    @admin.display(description=gettext_lazy("customer"), ordering="customer__legal_name")
    def customer_link(self, response: SurveyResponse) -> str:
        url = reverse("admin:customers_customer_change", args=[response.customer_id])
        return format_html('<a href="{}">{}</a>', url, response.customer)

    @admin.display(description=gettext_lazy("scores"))
    def scores(self, response: SurveyResponse) -> str:
        return ", ".join(
            f"{answer.question.get_kind_display().split(' ')[0]} {answer.score}"
            for answer in response.answers.all()
            if answer.score is not None
        )

    @admin.display(description=gettext_lazy("free text"))
    def excerpt(self, response: SurveyResponse) -> str:
        text = " / ".join(answer.text for answer in response.answers.all() if answer.text)
        return text[:120] + ("…" if len(text) > 120 else "")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("reports/", self.admin_site.admin_view(self.reports_view), name="{}_{}_reports".format(*info)),
            *super().get_urls(),
        ]

    def reports_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ReportFilterForm(request.GET or None)
        start = end = None
        survey_id = None
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            start = datetime.combine(data["start"], time.min, tzinfo=UTC) if data.get("start") else None
            end = datetime.combine(data["end"], time.min, tzinfo=UTC) if data.get("end") else None
            survey_id = data["survey"].pk if data.get("survey") else None
        language = get_language()[:2]
        months = selectors.nps_over_time(start=start, end=end, survey_id=survey_id)
        nps = selectors.nps_summary(start=start, end=end, survey_id=survey_id)
        csat = selectors.csat_summary(start=start, end=end, survey_id=survey_id)
        reasons = selectors.churn_reasons(start=start, end=end, survey_id=survey_id)
        labels = [point.month.strftime("%Y-%m") for point in months]
        month_axis = _("month")
        charts: dict[str, Chart] = {}  # the canvas id -> its chart
        if months:
            charts["nps-mix"] = bar_chart(
                title=_("Promoters, passives and detractors per month"),
                labels=labels,
                series=[
                    Series(_("Detractors (0-6)"), [_share(p.detractors, p.total) for p in months], DETRACTOR),
                    Series(_("Passives (7-8)"), [_share(p.passives, p.total) for p in months], PASSIVE),
                    Series(_("Promoters (9-10)"), [_share(p.promoters, p.total) for p in months], PROMOTER),
                ],
                stacked=True,
                x_label=month_axis,
                y_label=_("share of the answers (%)"),
                unit=PERCENT,
                y_min=0,
                y_max=100,
            )
            charts["nps-line"] = line_chart(
                title=_("NPS per month"),
                labels=labels,
                series=[Series("NPS", [point.score for point in months], BAR)],
                x_label=month_axis,
                # NPS runs from -100 (all detractors) to 100 (all promoters): a fixed scale.
                y_label=_("NPS (-100 to 100)"),
                unit=NUMBER,
                y_min=-100,
                y_max=100,
            )
        if csat.responses:
            charts["csat-chart"] = bar_chart(
                title=_("CSAT answers by score"),
                labels=[f"{score} / 5" for score in sorted(csat.distribution, reverse=True)],
                series=[
                    Series(
                        _("answers"),
                        [csat.distribution[score] for score in sorted(csat.distribution, reverse=True)],
                        BAR,
                    )
                ],
                x_label=_("answers"),
                y_label=_("score"),
                horizontal=True,
            )
        reason_rows = [(reason.label(language), reason.count) for reason in reasons]
        if any(count for _label, count in reason_rows):
            charts["churn-chart"] = bar_chart(
                title=_("Why customers cancel"),
                labels=[label for label, _count in reason_rows],
                series=[Series(_("answers"), [count for _label, count in reason_rows], DETRACTOR)],
                x_label=_("answers"),
                y_label=_("reason"),
                horizontal=True,
            )
        headlines = [
            (_("NPS"), "—" if nps.score is None else str(nps.score)),
            (_("NPS answers"), str(nps.total)),
            (_("CSAT average"), "—" if csat.average is None else f"{csat.average} / 5"),
            (_("CSAT answers"), str(csat.responses)),
            (_("cancellation answers"), str(sum(count for _label, count in reason_rows))),
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Feedback reports"),
            "form": form,
            "nps": nps,
            "months": months,
            "csat": csat,
            "reasons": reason_rows,
            "headlines": headlines,
            "charts": [(chart_id, chart.as_json()) for chart_id, chart in charts.items()],
            "media": self.media + forms.Media(js=["tarif/admin/reports.js"]),
        }
        return TemplateResponse(request, "admin/feedback/reports.html", context)
