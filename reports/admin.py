"""The dashboards in the operator console: one page per report, with charts and exports.

Hung on the table-less `Dashboard` model so they sit in the console's sidebar and
index; only staff with `reports.view_dashboards` (Finance, Read-only) see them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from babel.numbers import format_decimal, format_percent
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from config.console import StyledAdmin, babel_locale, format_money
from reports.exports import to_csv, to_xlsx
from reports.filters import ReportFilterForm
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
    Report,
)
from reports.selectors import mrr_summary_status, next_summary_refresh

PERMISSION = "reports.view_dashboards"


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


def _when(value: datetime) -> str:
    return date_format(timezone.localtime(value), "DATETIME_FORMAT")


def as_of_text(as_of: AsOf | None, *, reads_summary: bool) -> str:
    """The sentence under a report's title saying how current its figures are."""
    if as_of is None:
        return ""
    if as_of.source == SUMMARY:
        text = _(
            "Figures as of %(time)s (last refresh of the MRR summary); invoices issued, paid or voided since "
            "then are not counted yet."
        ) % {"time": _when(as_of.at)}
        if as_of.next_refresh:
            text += " " + _("Next refresh: %(time)s.") % {"time": _when(as_of.next_refresh)}
        return text
    if reads_summary and as_of.source == LIVE:
        return _(
            "Figures as of %(time)s, computed from the invoices for this page: the MRR summary has not been "
            "built yet (its first refresh builds it)."
        ) % {"time": _when(as_of.at)}
    return _("Figures as of %(time)s, computed from the current data.") % {"time": _when(as_of.at)}


def _shade(column: Column, row: dict[str, Any]) -> float | None:
    value = row.get(column.key)
    if column.kind == RATE and isinstance(value, Fraction):
        return round(max(0.0, min(float(value), 1.0)) * 0.6, 3)
    return None


@admin.register(Dashboard)
class DashboardAdmin(StyledAdmin):
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
            "reports": [
                (report, reverse("admin:reports_dashboard_report", args=[report.name])) for report in REPORTS.values()
            ],
        }
        return TemplateResponse(request, "admin/reports/index.html", context)

    def report_view(self, request: HttpRequest, name: str) -> HttpResponse:
        report = self._check(request, name)
        form = ReportFilterForm(request.GET or None)
        table = None
        if not request.GET or form.is_valid():
            if not request.GET:
                form = ReportFilterForm({})
                form.is_valid()
            table = report.build(form.filters())
        query = request.GET.urlencode()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": report.title,
            "report": report,
            "form": form,
            "table": table,
            "as_of_text": as_of_text(table.as_of, reads_summary=report.reads_summary) if table else "",
            "header": [str(column.label) for column in table.columns] if table else [],
            "rows": [
                [(display_value(column, row), _shade(column, row), column.kind) for column in table.columns]
                for row in table.rows
            ]
            if table
            else [],
            "csv_url": reverse("admin:reports_dashboard_export", args=[name, "csv"]) + (f"?{query}" if query else ""),
            "xlsx_url": reverse("admin:reports_dashboard_export", args=[name, "xlsx"]) + (f"?{query}" if query else ""),
            "api_url": f"/api/v1/reports/{name}/" + (f"?{query}" if query else ""),
        }
        return TemplateResponse(request, "admin/reports/dashboard.html", context, status=200 if table else 400)

    def export_view(self, request: HttpRequest, name: str, file_format: str) -> HttpResponse:
        report = self._check(request, name)
        if file_format not in ("csv", "xlsx"):
            raise Http404(_("Reports export to CSV or XLSX."))
        form = ReportFilterForm(request.GET or {})
        if not form.is_valid():
            errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        table = report.build(form.filters())
        filename = f"{report.name}-{form.cleaned_data['start']:%Y-%m}-{form.cleaned_data['end']:%Y-%m}.{file_format}"
        if file_format == "csv":
            response = HttpResponse(to_csv(table), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(
                to_xlsx(table, title=report.name),
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
