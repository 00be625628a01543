"""Console: e-reporting periods (issue 18 item 7): each period's report, state, totals by day,
category and rate, the reconciliation with the period's documents, a chart of totals by day,
and the build / submit actions (both call the services; nothing here writes a row itself)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action
from unfold.enums import ActionVariant

from config.console import ReadOnlyAdminMixin, StyledAdmin, error_text, status_badge
from config.errors import DomainError
from config.formatting import format_money
from config.modes import current_livemode, scope_to_mode
from config.money import currency_exponent
from invoices.einvoicing.errors import PlatformUnavailable
from invoices.ereporting.models import EReportingPeriod, EReportingRegime, EReportingStatus
from invoices.ereporting.selectors import ereporting_document_totals
from invoices.ereporting.services import adapter_for_brand, ereporting_period_build, ereporting_period_submit
from invoices.models import Brand

ACTION_TEMPLATE = "admin/invoices/invoice/action_page.html"
STATE_TONES = {
    "built": "info",
    "submitted": "info",
    "accepted": "success",
    "rejected": "danger",
    "corrected": "warning",
}


class StatusInline(admin.TabularInline):
    model = EReportingStatus
    extra = 0
    can_delete = False
    fields = ("at", "state", "origin", "reason")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a status history: written by ereporting_status_record only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EReportingRegime)
class EReportingRegimeAdmin(StyledAdmin):
    list_display = ("brand", "regime", "enabled")
    list_filter = ("regime", "enabled")


class BuildForm(forms.Form):
    brand = forms.ModelChoiceField(label=_("Brand"), queryset=Brand.objects.order_by("name"))
    kind = forms.ChoiceField(label=_("Kind"), choices=EReportingPeriod.Kind.choices)
    start = forms.DateField(
        label=_("First day of the period"),
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The 1st, 11th or 21st for ten-day periods, else the first day of the month."),
    )


def _rows_by_day(period: EReportingPeriod) -> list[dict[str, Any]]:
    rows = []
    for row in period.totals.get("rows", []):
        amount = row.get("taxable_amount", row.get("amount", 0))
        rows.append(
            {
                "day": row["day"],
                "scope": row["scope"],
                "category": row.get("category_code", ""),
                "vat_category": row["vat_category"],
                "rate": row["rate"],
                "amount": format_money(amount, row["currency"]),
                "tax": format_money(row["tax_amount"], row["currency"]) if "tax_amount" in row else "",
                "count": row.get("invoices", row.get("payments", 0)) + row.get("credit_notes", row.get("refunds", 0)),
                # The EUR the flow reports (the VAT is declared in euros): shown when converted.
                "amount_eur": format_money(row.get("taxable_amount_eur", row.get("amount_eur", amount)), "EUR")
                if row["currency"] != "EUR"
                else "",
                "exchange_rate": row.get("exchange_rate", "") if row["currency"] != "EUR" else "",
            }
        )
    return rows


def _report_sums(period: EReportingPeriod) -> dict[str, tuple[int, int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in period.totals.get("rows", []):
        if period.kind == EReportingPeriod.Kind.TRANSACTIONS:
            sums[row["currency"]][0] += row["taxable_amount"]
            sums[row["currency"]][1] += row["tax_amount"]
        else:
            sums[row["currency"]][0] += row["amount"]
    return {currency: (values[0], values[1]) for currency, values in sums.items()}


def reconciliation(period: EReportingPeriod) -> list[dict[str, Any]]:
    """One line per currency: the documents' totals, the report's, the difference (to the cent)."""
    report = _report_sums(period)
    lines = []
    for documents in ereporting_document_totals(
        brand=period.brand, livemode=period.livemode, start=period.start, end=period.end
    ):
        reported_amount, reported_tax = report.pop(documents.currency, (0, 0))
        if period.kind == EReportingPeriod.Kind.TRANSACTIONS:
            expected_amount, expected_tax = documents.net_excluding_tax, documents.net_tax
            count = gettext("%(invoices)s invoices, %(notes)s credit notes") % {
                "invoices": documents.invoices,
                "notes": documents.credit_notes,
            }
        else:
            expected_amount, expected_tax = documents.net_collected, 0
            count = gettext("%(payments)s payments, %(refunds)s refunds") % {
                "payments": documents.payments,
                "refunds": documents.refunds,
            }
        lines.append(
            _reconciliation_line(
                documents.currency, count, expected_amount, expected_tax, reported_amount, reported_tax
            )
        )
    for currency, (reported_amount, reported_tax) in report.items():
        lines.append(_reconciliation_line(currency, "0", 0, 0, reported_amount, reported_tax))
    return lines


def _reconciliation_line(
    currency: str, count: Any, expected_amount: int, expected_tax: int, reported_amount: int, reported_tax: int
) -> dict[str, Any]:
    difference = reported_amount - expected_amount
    tax_difference = reported_tax - expected_tax
    return {
        "currency": currency,
        "documents": count,
        "expected_amount": format_money(expected_amount, currency),
        "expected_tax": format_money(expected_tax, currency),
        "reported_amount": format_money(reported_amount, currency),
        "reported_tax": format_money(reported_tax, currency),
        "difference": format_money(difference, currency),
        "tax_difference": format_money(tax_difference, currency),
        "matches": difference == 0 and tax_difference == 0,
    }


def totals_chart(period: EReportingPeriod) -> dict[str, Any] | None:
    """Reported amounts (excluding tax for transactions, collected for payments) per day, in the
    JSON shape static/tarif/admin/reports.js draws (reports/charts.py `Chart.as_json`, which
    invoices may not import); the first currency only. None when the period reports nothing."""
    by_currency: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in period.totals.get("rows", []):
        by_currency[row["currency"]][row["day"]] += row.get("taxable_amount", row.get("amount", 0))
    if not by_currency:
        return None
    days = sorted({day for values in by_currency.values() for day in values})
    currency = sorted(by_currency)[0]
    scale = 10 ** currency_exponent(currency)
    return {
        "title": gettext("Reported amounts by day (%(currency)s)") % {"currency": currency},
        "labels": [date.fromisoformat(day).strftime("%d/%m") for day in days],
        "datasets": [
            {
                "label": currency,
                "type": "bar",
                "data": [by_currency[currency].get(day, 0) / scale for day in days],
                "colour": "#2851a3",
            }
        ],
        "x_label": gettext("Day"),
        "y_label": "",
        "unit": "money",
        "currency": currency,
        "stacked": False,
        "y_min": None,
        "y_max": None,
        "horizontal": False,
    }


@admin.register(EReportingPeriod)
class EReportingPeriodAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("__str__", "brand", "kind", "start", "end", "version", "state_display", "is_correction")
    list_filter = ("kind", "state", "brand")
    date_hierarchy = "start"
    inlines = [StatusInline]
    change_form_template = "admin/ereporting/ereportingperiod/change_form.html"
    actions_list = ["build_tool"]
    actions_detail = ["rebuild_action", "submit_action"]
    fields = (
        "brand",
        "kind",
        "start",
        "end",
        "version",
        "corrects",
        "state",
        "reason",
        "tracking_id",
        "flow_id",
        "content_sha256",
        "submit_attempts",
        "built_at",
        "submitted_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return scope_to_mode(super().get_queryset(request).select_related("brand", "corrects"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("ereporting.view_ereportingperiod")

    def has_build_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Build and submit: those who may add periods (Finance); the rows themselves stay read only."""
        return request.user.has_perm("ereporting.add_ereportingperiod")

    state_display = status_badge("state", _("state"), STATE_TONES)

    @admin.display(description=_("correction"), boolean=True)
    def is_correction(self, period: EReportingPeriod) -> bool:
        return period.corrects_id is not None

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        period = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if period is not None:
            chart = totals_chart(period)
            context.update(
                report_rows=_rows_by_day(period),
                reconciliation=reconciliation(period),
                chart=chart,
                chart_title=chart["title"] if chart is not None else "",
                is_transactions=period.kind == EReportingPeriod.Kind.TRANSACTIONS,
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _period(self, request: HttpRequest, object_id: str) -> EReportingPeriod:
        period = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_build_permission(request):
            raise PermissionDenied
        return period

    def _page(
        self, request: HttpRequest, *, title: str, form: forms.Form, consequences: list[str], submit: str, cancel: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "form": form,
            "consequences": consequences,
            "submit_label": submit,
            "submit_variant": "primary",
            "cancel_url": cancel,
        }
        return TemplateResponse(request, ACTION_TEMPLATE, context)

    @action(description=_("Build a period"), url_path="build", permissions=["build"], icon="summarize")
    def build_tool(self, request: HttpRequest) -> HttpResponse:
        form = BuildForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            livemode = current_livemode()
            try:
                period = ereporting_period_build(
                    brand=form.cleaned_data["brand"],
                    livemode=True if livemode is None else livemode,
                    kind=form.cleaned_data["kind"],
                    start=form.cleaned_data["start"],
                )
            except DomainError as error:
                form.add_error(None, error_text(error))
            else:
                self.message_user(request, gettext("Period %(period)s built.") % {"period": period}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:ereporting_ereportingperiod_change", args=[period.pk]))
        return self._page(
            request,
            title=gettext("Build an e-reporting period"),
            form=form,
            consequences=[
                gettext("The report is computed from the issued documents of the period."),
                gettext("A period already sent to the platform is not changed: a corrective version is built."),
            ],
            submit=gettext("Build"),
            cancel=reverse("admin:ereporting_ereportingperiod_changelist"),
        )

    @action(description=_("Rebuild"), url_path="rebuild", permissions=["build"], icon="refresh")
    def rebuild_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        period = self._period(request, object_id)
        form = forms.Form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                rebuilt = ereporting_period_build(
                    brand=period.brand, livemode=period.livemode, kind=period.kind, start=period.start, end=period.end
                )
            except DomainError as error:
                form.add_error(None, error_text(error))
            else:
                self.message_user(request, gettext("Period %(period)s built.") % {"period": rebuilt}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:ereporting_ereportingperiod_change", args=[rebuilt.pk]))
        consequences = [gettext("The totals are computed again from the period's documents.")]
        if period.state in (
            EReportingPeriod.State.SUBMITTED,
            EReportingPeriod.State.ACCEPTED,
            EReportingPeriod.State.REJECTED,
        ):
            consequences.append(gettext("The platform already received this period: a corrective version is built."))
        return self._page(
            request,
            title=gettext("Rebuild %(period)s") % {"period": period},
            form=form,
            consequences=consequences,
            submit=gettext("Rebuild"),
            cancel=reverse("admin:ereporting_ereportingperiod_change", args=[period.pk]),
        )

    @action(
        description=_("Submit to the platform"),
        url_path="submit",
        permissions=["build"],
        icon="send",
        variant=ActionVariant.PRIMARY,
    )
    def submit_action(self, request: HttpRequest, object_id: str) -> HttpResponse:
        period = self._period(request, object_id)
        form = forms.Form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            adapter = adapter_for_brand(brand=period.brand, livemode=period.livemode)
            if adapter is None:
                form.add_error(None, gettext("This brand has no active platform account in this mode."))
            else:
                try:
                    submitted = ereporting_period_submit(period=period, adapter=adapter)
                except DomainError as error:
                    form.add_error(None, error_text(error))
                except PlatformUnavailable as error:  # the period stays built; the sweeper retries
                    form.add_error(None, gettext("The platform could not be reached: %(error)s") % {"error": error})
                else:
                    self.message_user(
                        request,
                        gettext("Period %(period)s: %(state)s.")
                        % {"period": submitted, "state": submitted.get_state_display()},
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:ereporting_ereportingperiod_change", args=[period.pk]))
        return self._page(
            request,
            title=gettext("Submit %(period)s") % {"period": period},
            form=form,
            consequences=[gettext("The flow is sent to the brand's approved platform and kept in the archive.")],
            submit=gettext("Submit"),
            cancel=reverse("admin:ereporting_ereportingperiod_change", args=[period.pk]),
        )
