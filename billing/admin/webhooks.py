"""Webhook endpoints and their deliveries in the console: every attempt visible, manual resend."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.contrib.filters.admin import RangeDateTimeFilter, RelatedDropdownFilter

from billing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from billing.services.webhooks import (
    WebhookError,
    webhook_deliveries_resend,
    webhook_endpoint_create,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
    webhook_url_check,
)
from config.console import StyledAdmin, TabularInline, status_badge


class WebhookEndpointForm(forms.ModelForm):
    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "enabled_events", "active")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhook_url_check(url=url)
        except WebhookError as error:
            raise forms.ValidationError(str(error)) from error
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(StyledAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "description", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description")
    fields = ("url", "description", "enabled_events", "active")
    actions = ("roll_secret",)

    def save_model(self, request: Any, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if change:
            stored = WebhookEndpoint.objects.get(pk=obj.pk)
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            webhook_endpoint_update(endpoint=stored, changes=changes)
            return
        endpoint = webhook_endpoint_create(url=obj.url, enabled_events=obj.enabled_events, description=obj.description)
        obj.pk, obj.secret = endpoint.pk, endpoint.secret
        messages.warning(request, _("Signing secret (shown once): %(secret)s") % {"secret": endpoint.secret})

    @admin.action(description=_("Roll the signing secret of the selected endpoints"), permissions=["change"])
    def roll_secret(self, request: Any, queryset: Any) -> None:
        for endpoint in queryset:
            webhook_endpoint_roll_secret(endpoint=endpoint)
            messages.warning(
                request,
                _("New secret for %(url)s (shown once): %(secret)s") % {"url": endpoint.url, "secret": endpoint.secret},
            )


class WebhookAttemptInline(TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("attempted_at", "status_code", "response_excerpt", "error", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(StyledAdmin):
    list_display = (
        "event",
        "endpoint",
        "status_badge",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", ("endpoint", RelatedDropdownFilter), ("next_attempt_at", RangeDateTimeFilter))
    status_badge = status_badge("status", _("status"), {"succeeded": "success", "pending": "info", "failed": "danger"})
    list_select_related = ("event", "endpoint")
    search_fields = ("object_key", "event__type")
    readonly_fields = (
        "endpoint",
        "event",
        "object_key",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    )
    inlines = (WebhookAttemptInline,)
    actions = ("resend",)

    def has_add_permission(self, request: Any) -> bool:
        return False

    @admin.action(description=_("Send the selected deliveries again"), permissions=["change"])
    def resend(self, request: Any, queryset: Any) -> None:
        count = webhook_deliveries_resend(deliveries=queryset)
        self.message_user(
            request, ngettext("%(count)d delivery queued.", "%(count)d deliveries queued.", count) % {"count": count}
        )
