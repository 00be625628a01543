"""Console: checkout sessions, read-only (they are written by the checkout services only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from billing.checkout.models import CheckoutSession, CheckoutSessionLineItem
from billing.checkout.selectors import checkout_session_url
from config.console import ReadOnlyAdminMixin, ReadOnlyInline, StyledAdmin, format_money, pretty_json, status_badge


class LineItemInline(ReadOnlyInline):
    model = CheckoutSessionLineItem
    fields = ("price", "quantity")
    readonly_fields = fields
    show_change_link = False


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdminMixin, StyledAdmin):
    list_display = ("public_id", "status_column", "mode", "origin", "total", "customer", "created_at", "expires_at")
    list_filter = ("status", "mode", "origin", "brand")
    search_fields = ("=public_id", "customer_email", "customer__legal_name", "=origin_id")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    inlines = [LineItemInline]
    fields = (
        "public_id",
        "status",
        "livemode",
        "mode",
        "brand",
        "hosted_page",
        "total",
        "customer",
        "customer_email",
        "subscription",
        "invoice",
        "payment_method",
        "trial_period_days",
        "coupon",
        "allow_promotion_codes",
        "promotion_code",
        "tax_id_collection",
        "billing_address_collection",
        "origin",
        "origin_id",
        "success_url",
        "cancel_url",
        "decline_message",
        "created_at",
        "expires_at",
        "processing_started_at",
        "completed_at",
        "metadata_json",
    )
    readonly_fields = fields

    status_column = status_badge(
        "status", _("status"), {"open": "info", "complete": "success", "expired": "warning"}
    )

    @admin.display(description=_("total"), ordering="amount_total")
    def total(self, session: CheckoutSession) -> str:
        return format_money(session.amount_total, session.currency) if session.amount_total is not None else "—"

    @admin.display(description=_("hosted page"))
    def hosted_page(self, session: CheckoutSession) -> Any:
        if session.status != CheckoutSession.Status.OPEN:
            return "—"
        url = checkout_session_url(session)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    @admin.display(description=_("metadata"))
    def metadata_json(self, session: CheckoutSession) -> str:
        return pretty_json(session.metadata)
