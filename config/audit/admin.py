"""The audit log in the console: read-only, filterable, exportable as CSV (finance staff)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RangeDateTimeFilter

from config.audit.models import AuditEntry
from config.console import AllValuesDropdownFilter, StyledAdmin

CSV_COLUMNS = (
    "at",
    "actor_repr",
    "channel",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "changes",
    "ip_address",
    "request_id",
    "method",
    "path",
    "status_code",
    "extra",
)


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin.register(AuditEntry)
class AuditEntryAdmin(StyledAdmin):
    list_display = ("at", "actor_repr", "channel", "action", "target_type", "target_link", "ip_address", "status_code")
    list_filter = (
        "channel",
        ("action", AllValuesDropdownFilter),
        ("target_type", AllValuesDropdownFilter),
        ("at", RangeDateTimeFilter),
    )
    search_fields = ("actor_repr", "target_repr", "target_id", "request_id", "ip_address")
    date_hierarchy = "at"
    list_per_page = 50
    readonly_fields = [field.name for field in AuditEntry._meta.fields] + ["changes_table"]
    fieldsets = (
        (None, {"fields": ("at", "actor", "actor_repr", "channel", "action", "status_code")}),
        (_("Object"), {"fields": ("target_type", "target_id", "target_repr", "changes_table")}),
        (_("Request"), {"fields": ("ip_address", "request_id", "method", "path", "extra")}),
        (_("Snapshots"), {"fields": ("before", "after"), "classes": ("collapse",)}),
    )
    change_list_template = "admin/audit/auditentry/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("object"))
    def target_link(self, entry: AuditEntry) -> str:
        return entry.target_repr or (f"{entry.target_id}" if entry.target_id else "—")

    @admin.display(description=_("changes"))
    def changes_table(self, entry: AuditEntry) -> str:
        if not entry.changes:
            return "—"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            ((name, json.dumps(old), json.dumps(new)) for name, (old, new) in sorted(entry.changes.items())),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("field"),
            _("before"),
            _("after"),
            rows,
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path("export.csv", self.admin_site.admin_view(self.export_csv_view), name="audit_auditentry_export"),
            *super().get_urls(),
        ]

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        """The list as filtered on screen (same query string), streamed as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request).order_by("at", "pk")
        writer = csv.writer(_Echo())

        def rows() -> Iterator[str]:
            yield writer.writerow(CSV_COLUMNS)
            for entry in queryset.iterator(chunk_size=2000):
                values = []
                for column in CSV_COLUMNS:
                    value = getattr(entry, column)
                    if isinstance(value, dict | list):
                        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
                    elif hasattr(value, "isoformat"):
                        value = value.isoformat()
                    values.append(_csv_safe("" if value is None else str(value)))
                yield writer.writerow(values)

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
        return response


def _csv_safe(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection): a cell never starts with = + - @."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
