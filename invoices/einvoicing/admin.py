"""Console: PA accounts (secrets write-only) and transmissions (read-only, "retry now", status timeline).

Writes go through the services: `platform_account_create` / `platform_account_update` and
`transmission_retry`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from config.admin_site import console_livemode
from config.console import StyledAdmin, TabularInline, error_text, status_badge
from config.errors import DomainError
from invoices.einvoicing.models import DirectoryEntry, LifecycleStatus, PlatformAccount, Transmission
from invoices.einvoicing.services import (
    ACCOUNT_FIELDS,
    platform_account_create,
    platform_account_update,
    transmission_retry,
)


class PlatformAccountForm(forms.ModelForm):
    # Write-only: never rendered back; left empty on a change, the stored secret stays.
    client_secret = forms.CharField(
        label=_("OAuth2 client secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only. Leave empty to keep the stored secret."),
    )
    webhook_secret = forms.CharField(
        label=_("Webhook signing secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only. Leave empty to keep the stored secret."),
    )

    class Meta:
        model = PlatformAccount
        fields = (
            "brand",
            "name",
            "kind",
            "base_url",
            "token_url",
            "client_id",
            "client_secret",
            "webhook_secret",
            "default_syntax",
            "active",
        )

    livemode = True  # the console's mode, set by the admin's get_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["client_secret"] = ""
        self.initial["webhook_secret"] = ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        brand = cleaned.get("brand")
        if self.instance.pk is None and brand is not None:
            if PlatformAccount.objects.filter(brand=brand, livemode=self.livemode).exists():
                self.add_error("brand", _("This brand already has a platform account in this mode."))
        return cleaned


@admin.register(PlatformAccount)
class PlatformAccountAdmin(StyledAdmin):
    form = PlatformAccountForm
    list_display = ("name", "brand", "kind", "base_url", "default_syntax", "active")
    list_filter = ("kind", "active")
    search_fields = ("name", "base_url")
    readonly_fields = ("webhook_url", "poll_cursor")

    @admin.display(description=_("Status webhook URL (give it to the platform)"))
    def webhook_url(self, obj: PlatformAccount) -> str:
        from django.urls import reverse  # deferred: only the change page shows it

        return reverse("einvoicing:status_webhook", args=[obj.pk]) if obj.pk else "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "brand") if obj is not None else fields

    def save_model(self, request: Any, obj: PlatformAccount, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in ACCOUNT_FIELDS if name in form.cleaned_data}
        if change:
            saved = platform_account_update(account=PlatformAccount.objects.get(pk=obj.pk), changes=data)
        else:
            saved = platform_account_create(
                brand_id=form.cleaned_data["brand"].pk, livemode=console_livemode(request), data=data
            )
        obj.pk = saved.pk

    def get_form(self, request: Any, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.livemode = console_livemode(request)
        return form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # transmissions keep their account: deactivate it instead


class LifecycleStatusInline(TabularInline):
    model = LifecycleStatus
    extra = 0
    can_delete = False
    fields = ("occurred_at", "code", "origin", "reason_code", "reason_text", "received_at")
    readonly_fields = fields
    ordering = ("occurred_at", "pk")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # statuses come from the platform only

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Transmission)
class TransmissionAdmin(StyledAdmin):
    list_display = (
        "tracking_id",
        "kind",
        "customer",
        "state_badge",
        "last_status_code",
        "needs_attention",
        "attempts",
        "next_attempt_at",
    )
    list_filter = ("state", "kind", "needs_attention", "last_status_code")
    search_fields = ("tracking_id", "flow_id", "invoice__number", "credit_note__number", "customer__legal_name")
    list_select_related = ("customer",)
    state_badge = status_badge(
        "state", _("state"), {"queued": "info", "submitting": "info", "submitted": "success", "failed": "danger"}
    )
    readonly_fields = (
        "account",
        "customer",
        "kind",
        "invoice",
        "credit_note",
        "state",
        "syntax",
        "tracking_id",
        "flow_id",
        "routing_address",
        "attempts",
        "next_attempt_at",
        "submitted_at",
        "last_error",
        "last_status_code",
        "needs_attention",
        "attention_reason",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    inlines = (LifecycleStatusInline,)
    actions = ("retry_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only: the one write is "retry now", through transmission_retry

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("einvoicing.change_transmission"))

    @admin.action(description=_("Retry now"), permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Transmission]) -> None:
        count = 0
        for transmission in queryset:
            try:
                transmission_retry(transmission=transmission, acting_user=request.user)  # type: ignore[arg-type]
            except DomainError as error:
                self.message_user(request, f"{transmission}: {error_text(error)}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(
                request,
                ngettext("%(count)d transmission queued.", "%(count)d transmissions queued.", count) % {"count": count},
                messages.SUCCESS,
            )


@admin.register(DirectoryEntry)
class DirectoryEntryAdmin(StyledAdmin):
    list_display = ("siren", "siret", "found", "routing_address", "platform", "fetched_at", "expires_at")
    list_filter = ("found",)
    search_fields = ("siren", "siret", "routing_address")
    readonly_fields = list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the cache expires by itself; "retry now" asks a "not found" answer again
