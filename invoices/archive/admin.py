"""Console: the archive, read only (records are written by `archive_append` and never changed)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from config.console import ReadOnlyAdminMixin, StyledAdmin
from config.modes import scope_to_mode
from invoices.archive.models import ArchiveRecord


@admin.register(ArchiveRecord)
class ArchiveRecordAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("sequence", "kind", "reference", "brand", "archived_at", "retain_until", "content_sha256")
    list_filter = ("kind", "brand")
    search_fields = ("reference", "content_sha256")
    fields = (
        "sequence",
        "kind",
        "reference",
        "brand",
        "metadata",
        "archived_at",
        "retain_until",
        "content_sha256",
        "previous_hash",
        "record_hash",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return scope_to_mode(super().get_queryset(request).select_related("brand").defer("content"))
