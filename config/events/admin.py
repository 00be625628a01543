"""Console pages for the domain event log and its consumers' cursors (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RangeDateTimeFilter

from config.console import AllValuesDropdownFilter, ReadOnlyAdminMixin, StyledAdmin, pretty_json
from config.events.models import DomainEvent, EventCursor


@admin.register(EventCursor)
class EventCursorAdmin(ReadOnlyAdminMixin, StyledAdmin):
    """Where each consumer of the event log (webhook endpoints, notifications, feedback triggers) has read to."""

    list_display = ("name", "last_event_id", "updated_at")


@admin.register(DomainEvent)
class DomainEventAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("occurred_at", "type", "object_type", "object_id", "customer", "acting_user")
    # Dozens of event types: searchable dropdowns; a date range instead of scrolling by day.
    list_filter = (
        ("object_type", AllValuesDropdownFilter),
        ("type", AllValuesDropdownFilter),
        ("occurred_at", RangeDateTimeFilter),
    )
    search_fields = ("type", "=object_id", "customer__legal_name")
    list_select_related = ("customer", "acting_user")
    date_hierarchy = "occurred_at"
    fields = ("type", "object_type", "object_id", "customer", "acting_user", "occurred_at", "created_at", "payload")
    readonly_fields = fields

    @admin.display(description=_("data"))
    def payload(self, event: DomainEvent) -> str:
        return pretty_json(event.data)
