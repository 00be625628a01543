"""The dashboards in the operator console: one page per report, with charts and exports.

Hung on the table-less `Dashboard` model so they sit in the console's sidebar and
index; only staff with `reports.view_dashboards` (Finance, Read-only) see them.

A report page reads top-down: headline figures (cards), the chart (Chart.js, drawn by
static/tarif/admin/charts.js from `json_script` data: the CSP allows no inline script),
then the table (the columns marked `on_screen`; the exports and the API carry them all).
Filters are pickers (month fields, brand, plan, currency and a searchable customer), never
typed ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from babel.numbers import format_decimal, format_percent
from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.models import Price
from config.console import StyledAdmin, babel_locale, format_money
from config.modes import scope_to_mode
from customers.models import Customer
from invoices.models import Invoice
from reports.exports import csv_chunks, to_csv, to_xlsx
from reports.filters import ReportFilterForm, ReportFilters
from reports.models import Dashboard
from reports.registry import (
    DATETIME,
    DECIMAL,
    DURATION,
    INT,
    LIVE,
    MONEY,
    MONTH,
    RATE,
    REPORTS,
    SUMMARY,
    AsOf,
    Column,
    Headline,
    Report,
)
from reports.selectors import USAGE_DIGEST, mrr_summary_status, next_summary_refresh

PERMISSION = "reports.view_dashboards"
# A report's page shows at most this many table rows (the usage report has one per customer and
# meter: 100,000 rows at 100,000 subscriptions took ~50 s to render); files and the API have all.
SCREEN_ROWS = 500


def display_value(column: Column, row: dict[str, Any]) -> str:
    value = row.get(column.key)
    if value is None or value == "":
        return "—"
    if column.kind == MONEY:
        return format_money(int(value), row.get("currency") or None) if row.get("currency") else str(value)
    if column.kind == RATE:
        return format_percent(Decimal(value.numerator) / Decimal(value.denominator), "#,##0.0 %", locale=babel_locale())
    if column.kind == MONTH:
        return date_format(value, "YEAR_MONTH_FORMAT")
    if column.kind == DATETIME and isinstance(value, datetime):
        return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")
    if column.kind == DURATION and isinstance(value, timedelta):
        return _("%(days)s days") % {
            "days": format_decimal(round(value.total_seconds() / 86400, 1), locale=babel_locale())
        }
    if column.kind in (INT, DECIMAL):
        number = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(value, Fraction) else value
        return format_decimal(round(Decimal(number), 2), locale=babel_locale())
    return str(value)


def headline_text(headline: Headline) -> str:
    return display_value(
        Column("value", "", headline.kind), {"value": headline.value, "currency": headline.currency or ""}
    )


def _when(value: datetime) -> str:
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


def as_of_text(as_of: AsOf | None, *, reads_summary: bool, summary: str = "") -> str:
    """The sentence under a report's title saying how current its figures are (a summary's
    figures add when the next refresh comes)."""
    if as_of is None:
        return ""
    when = {"time": _when(as_of.at)}
    if as_of.source == SUMMARY:
        if summary == USAGE_DIGEST:
            text = _(
                "Figures as of %(time)s (last refresh of the usage report's digest); usage reported since then is "
                "not counted yet. The files and the API are computed at each request."
            )
        elif summary:
            text = _(
                "Figures as of %(time)s (last refresh of this report's summary); invoices issued, paid or voided "
                "since then are not counted yet."
            )
        else:
            text = _(
                "Figures as of %(time)s (last refresh of the MRR summary); invoices issued, paid or voided since "
                "then are not counted yet."
            )
        text %= when
        if as_of.next_refresh:
            text += " " + _("Next refresh: %(time)s.") % {"time": _when(as_of.next_refresh)}
        return text
    if summary == USAGE_DIGEST:
        return _("Figures as of %(time)s, computed from the usage rollups for this page.") % when
    if summary:
        return (
            _(
                "Figures as of %(time)s, computed from the invoices for this page (the report's summary is not "
                "built yet, or these filters need the invoices themselves)."
            )
            % when
        )
    if reads_summary and as_of.source == LIVE:
        return (
            _(
                "Figures as of %(time)s, computed from the invoices for this page: the MRR summary has not been "
                "built yet (its first refresh builds it)."
            )
            % when
        )
    return _("Figures as of %(time)s, computed from the current data.") % when


def heat_level(column: Column, row: dict[str, Any]) -> int | None:
    """A rate cell's shade on the heat-map, 0 (none kept) to 10 (all kept): a CSS class."""
    value = row.get(column.key)
    if column.kind == RATE and isinstance(value, Fraction):
        return round(max(0.0, min(float(value), 1.0)) * 10)
    return None


MONTH_INPUT = forms.DateInput(attrs={"type": "month"}, format="%Y-%m")


class CustomerPicker(AutocompleteSelect):
    """The admin's search-as-you-type select (customers by name, e-mail, SIREN or city: the
    customer admin's search fields; the current mode's only), saying what to type."""

    def build_attrs(self, base_attrs: dict[str, Any], extra_attrs: dict[str, Any] | None = None) -> dict[str, Any]:
        attrs = super().build_attrs(base_attrs, extra_attrs)
        attrs["data-placeholder"] = str(gettext_lazy("Search a customer by name"))
        return attrs


class ConsoleReportFilterForm(ReportFilterForm):
    """The API's filter form with the console's pickers: month fields, a plan and currency
    select of the current mode's prices, and a searchable customer (the admin's autocomplete)."""

    customer = forms.ModelChoiceField(label=gettext_lazy("Customer"), queryset=Customer.objects.none(), required=False)
    plan = forms.ModelChoiceField(label=gettext_lazy("Plan"), queryset=Price.objects.none(), required=False)
    currency = forms.ChoiceField(label=gettext_lazy("Currency"), required=False)

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start"].widget = MONTH_INPUT
        self.fields["end"].widget = MONTH_INPUT
        self.fields["start"].help_text = ""
        prices = scope_to_mode(Price.objects.select_related("product").order_by("product__name", "nickname", "pk"))
        plan = self.fields["plan"]
        assert isinstance(plan, forms.ModelChoiceField)
        plan.queryset = prices
        plan.empty_label = "—"
        plan.label_from_instance = lambda price: f"{price.product.name} · {price}"  # type: ignore[method-assign]
        currencies = sorted({currency.upper() for currency in prices.values_list("currency", flat=True)})
        self.fields["currency"].choices = [("", "—"), *((code, code) for code in currencies)]  # type: ignore[attr-defined]
        customer = self.fields["customer"]
        assert isinstance(customer, forms.ModelChoiceField)
        customer.queryset = scope_to_mode(Customer.objects.all())
        customer.widget = CustomerPicker(Invoice._meta.get_field("customer"), admin.site)
        customer.widget.choices = customer.choices

    def clean_currency(self) -> str:
        return self.cleaned_data.get("currency") or ""

    def filters(self) -> ReportFilters:
        data = self.cleaned_data
        customer, plan = data.get("customer"), data.get("plan")
        self.cleaned_data = {
            **data,
            "customer": customer.pk if customer else None,
            "plan": plan.pk if plan else None,
        }
        try:
            return super().filters()
        finally:
            self.cleaned_data = data


@admin.register(Dashboard)
class DashboardAdmin(StyledAdmin):
    class Media:
        js = ("tarif/admin/reports.js",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("", self.admin_site.admin_view(self.index_view), name="reports_dashboard_changelist"),
            path("<slug:name>/", self.admin_site.admin_view(self.report_view), name="reports_dashboard_report"),
            path(
                "<slug:name>/export.<str:file_format>",
                self.admin_site.admin_view(self.export_view),
                name="reports_dashboard_export",
            ),
        ]

    def _check(self, request: HttpRequest, name: str | None = None) -> Report | None:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        if name is None:
            return None
        if name not in REPORTS:
            raise Http404(_("No such report."))
        return REPORTS[name]

    def index_view(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        status = mrr_summary_status()
        if status.built:
            summary_text = _("MRR summary as of %(time)s.") % {"time": _when(status.as_of())}
            upcoming = next_summary_refresh(after=timezone.now())
            if upcoming:
                summary_text += " " + _("Next refresh: %(time)s.") % {"time": _when(upcoming)}
        else:
            summary_text = _("The MRR summary has not been built yet: the MRR reports compute their figures live.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Reports"),
            "summary_text": summary_text,
            "operations_url": reverse("operations") if request.user.has_perm("billing.view_billingrun") else "",
            "feedback_url": reverse("admin:feedback_surveyresponse_reports")
            if request.user.has_perm("feedback.view_surveyresponse")
            else "",
            "reports": [
                (report, reverse("admin:reports_dashboard_report", args=[report.name])) for report in REPORTS.values()
            ],
        }
        return TemplateResponse(request, "admin/reports/index.html", context)

    def report_view(self, request: HttpRequest, name: str) -> HttpResponse:
        report = self._check(request, name)
        form = ConsoleReportFilterForm(request.GET or {}, request=request)
        table = report.build(form.filters()) if form.is_valid() else None
        if table:
            # Show the period the figures cover (the default one when none was chosen).
            form.data = form.data.copy()
            form.data["start"] = f"{form.cleaned_data['start']:%Y-%m}"
            form.data["end"] = f"{form.cleaned_data['end']:%Y-%m}"
        query = request.GET.urlencode()
        columns = [column for column in table.columns if column.on_screen] if table else []
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": report.title,
            "report": report,
            "form": form,
            "media": self.media + form.media,
            "table": table,
            "as_of_text": as_of_text(table.as_of, reads_summary=report.reads_summary, summary=report.summary)
            if table
            else "",
            "headlines": [(str(item.label), headline_text(item)) for item in table.headlines] if table else [],
            "charts": [
                (f"report-chart-{index}", chart.as_json())
                for index, chart in enumerate(table.charts if table else ())
                if chart.has_data
            ],
            "header": [(str(column.label), column.kind) for column in columns],
            "rows": [
                [(display_value(column, row), heat_level(column, row), column.kind) for column in columns]
                for row in table.rows[:SCREEN_ROWS]
            ]
            if table
            else [],
            "rows_cut": _(
                "The first %(shown)s rows of %(total)s are shown: the CSV and XLSX exports and the API have them all."
            )
            % {
                "shown": number_format(SCREEN_ROWS, force_grouping=True),
                "total": number_format(len(table.rows), force_grouping=True),
            }
            if table and len(table.rows) > SCREEN_ROWS
            else "",
            "full_list_note": table.full_list.note if table and table.full_list else "",
            "heatmap": name == "cohorts",
            "csv_url": reverse("admin:reports_dashboard_export", args=[name, "csv"]) + (f"?{query}" if query else ""),
            "xlsx_url": reverse("admin:reports_dashboard_export", args=[name, "xlsx"]) + (f"?{query}" if query else ""),
            "api_url": f"/api/v1/reports/{name}/" + (f"?{query}" if query else ""),
        }
        return TemplateResponse(request, "admin/reports/dashboard.html", context, status=200 if table else 400)

    def export_view(self, request: HttpRequest, name: str, file_format: str) -> HttpResponseBase:
        report = self._check(request, name)
        if file_format not in ("csv", "xlsx"):
            raise Http404(_("Reports export to CSV or XLSX."))
        form = ReportFilterForm(request.GET or {})
        if not form.is_valid():
            errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        table = report.build(form.filters())
        # A full list (usage's customers) is read at this request, whatever the page's digest says.
        summarized = (report.reads_summary or report.summary) and table.full_list is None
        as_of = table.as_of.at if summarized and table.as_of else None
        filename = f"{report.name}-{form.cleaned_data['start']:%Y-%m}-{form.cleaned_data['end']:%Y-%m}.{file_format}"
        response: HttpResponseBase
        if file_format == "csv" and table.full_list is not None:
            # Issue 20: a million rows (usage per customer) stream from a server-side cursor.
            response = StreamingHttpResponse(csv_chunks(table, as_of=as_of), content_type="text/csv; charset=utf-8")
        elif file_format == "csv":
            response = HttpResponse(to_csv(table, as_of=as_of), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(
                to_xlsx(table, title=report.name, as_of=as_of),
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
