"""The console's frame as django-unfold asks for it: navigation by job, the live/test label,
global search and the dashboard's context. Computed per request (permissions, mode)."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from config.types import JsonDict


def is_superuser(request: HttpRequest) -> bool:
    """Plumbing (every registered table, cursors, beat internals) is for superusers only."""
    return bool(getattr(request.user, "is_superuser", False))


def environment_callback(request: HttpRequest) -> list[Any] | None:
    # deferred: config.admin_site imports this module's settings consumer (unfold) at load
    from config.admin_site import console_livemode

    if not getattr(request.user, "is_authenticated", False):
        return None
    if console_livemode(request):
        return [_("Live data"), "success"]
    return [_("Test data"), "warning"]


def _link(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _item(title: Any, icon: str, url_name: str, *, permission: str | None = None) -> JsonDict:
    """A sidebar link; a model's list shows only to those who may view that model (or to
    those holding `permission`, for pages that are not a model's list)."""
    item: JsonDict = {"title": title, "icon": icon, "link": _link(url_name)}
    model = re.fullmatch(r"admin:(\w+?)_([a-z]+)_changelist", url_name)
    perm = permission or (f"{model[1]}.view_{model[2]}" if model else None)
    if perm:
        item["permission"] = lambda request, perm=perm: request.user.has_perm(perm)
    return item


def navigation(request: HttpRequest) -> list[JsonDict]:
    """The sidebar, grouped by the job finance staff come to do (docs/console.md)."""
    groups: list[JsonDict] = [
        {
            "title": _("Home"),
            "items": [_item(_("Dashboard"), "dashboard", "admin:index")],
        },
        {
            "title": _("Customers"),
            "items": [
                _item(_("Customers"), "group", "admin:customers_customer_changelist"),
                _item(_("Portal users"), "badge", "admin:customers_customeruser_changelist"),
                _item(_("Emails sent"), "mail", "admin:customers_notificationlog_changelist"),
            ],
        },
        {
            "title": _("Subscriptions"),
            "items": [
                _item(_("Subscriptions"), "autorenew", "admin:billing_subscription_changelist"),
                _item(_("Pending items"), "playlist_add", "admin:billing_invoiceitem_changelist"),
                _item(_("Usage events"), "speed", "admin:billing_usageevent_changelist"),
                _item(_("Billing runs"), "event_repeat", "admin:billing_billingrun_changelist"),
                _item(_("Quotes"), "request_quote", "admin:quotes_quote_changelist"),
            ],
        },
        {
            "title": _("Invoices & credit notes"),
            "items": [
                _item(_("Invoices"), "receipt_long", "admin:invoices_invoice_changelist"),
                _item(_("Credit notes"), "undo", "admin:invoices_creditnote_changelist"),
                _item(_("Balance transactions"), "savings", "admin:invoices_balancetransaction_changelist"),
            ],
        },
        {
            "title": _("Payments"),
            "items": [
                _item(_("Payments"), "payments", "admin:billing_payment_changelist"),
                _item(_("Refunds"), "currency_exchange", "admin:billing_refund_changelist"),
                _item(_("Dunning"), "notification_important", "admin:billing_dunningcase_changelist"),
                _item(_("Bank reconciliation"), "account_balance", "admin:billing_bankstatement_changelist"),
                _item(_("Payment methods"), "credit_card", "admin:billing_paymentmethod_changelist"),
                _item(_("Prepaid credits"), "account_balance_wallet", "admin:wallets_creditgrant_changelist"),
                _item(_("Wallets"), "wallet", "admin:wallets_wallet_changelist"),
                _item(_("Checkout sessions"), "shopping_cart_checkout", "admin:checkout_checkoutsession_changelist"),
            ],
        },
        {
            "title": _("Catalog"),
            "items": [
                _item(_("Products"), "inventory_2", "admin:billing_product_changelist"),
                _item(_("Prices"), "sell", "admin:billing_price_changelist"),
                _item(_("Coupons"), "confirmation_number", "admin:billing_coupon_changelist"),
                _item(_("Promotion codes"), "qr_code", "admin:billing_promotioncode_changelist"),
                _item(_("Meters"), "monitoring", "admin:billing_meter_changelist"),
                _item(_("Features"), "toggle_on", "admin:entitlements_feature_changelist"),
                _item(_("Product features"), "workspace_premium", "admin:entitlements_productfeature_changelist"),
                _item(_("Pricing tables"), "view_week", "admin:storefront_pricingtable_changelist"),
                _item(_("Payment links"), "link", "admin:storefront_paymentlink_changelist"),
            ],
        },
        {
            "title": _("Accounting"),
            "items": [
                _item(_("Journal"), "menu_book", "accounting_journal", permission="ledger.view_journalentry"),
                _item(_("Trial balance"), "balance", "accounting_trial_balance", permission="ledger.view_journalentry"),
                _item(_("VAT summary"), "percent", "accounting_vat", permission="ledger.view_journalentry"),
                _item(_("Periods"), "lock_clock", "accounting_periods", permission="ledger.view_journalentry"),
                _item(_("Reconciliation"), "rule", "accounting_reconciliation", permission="ledger.view_journalentry"),
                _item(_("Exports"), "download", "accounting_exports", permission="ledger.view_journalentry"),
            ],
        },
        {
            "title": _("Reports"),
            "items": [
                _item(
                    _("Reports"),
                    "bar_chart",
                    "admin:reports_dashboard_changelist",
                    permission="reports.view_dashboards",
                ),
            ],
        },
        {
            "title": _("Feedback"),
            "items": [
                _item(_("Surveys"), "quiz", "admin:feedback_survey_changelist"),
                _item(_("Responses"), "forum", "admin:feedback_surveyresponse_changelist"),
            ],
        },
        {
            "title": _("Developers"),
            "items": [
                _item(_("API keys"), "key", "admin:config_apikey_changelist"),
                _item(_("Webhook endpoints"), "webhook", "admin:billing_webhookendpoint_changelist"),
                _item(_("Webhook deliveries"), "send", "admin:billing_webhookdelivery_changelist"),
                _item(_("Events"), "bolt", "admin:events_domainevent_changelist"),
                _item(_("Test clocks"), "schedule", "admin:billing_testclock_changelist"),
                _item(_("Import from Stripe"), "cloud_download", "admin:billing_stripeimportrun_changelist"),
            ],
        },
        {
            "title": _("Settings"),
            "items": [
                _item(_("Brands"), "palette", "admin:invoices_brand_changelist"),
                _item(_("Tax rates"), "percent", "admin:invoices_taxrate_changelist"),
                _item(_("Number series"), "format_list_numbered", "admin:invoices_numbersequence_changelist"),
                _item(_("Staff"), "manage_accounts", "admin:auth_user_changelist"),
                _item(_("Audit log"), "history", "admin:audit_auditentry_changelist"),
                _item(_("Operations"), "monitor_heart", "operations", permission="billing.view_billingrun"),
            ],
        },
    ]
    for group in groups:
        group["items"] = [item for item in group["items"] if item["link"]]
    return [group for group in groups if group["items"]]


def search_callback(request: HttpRequest, search_term: str) -> list[Any]:
    """Global search (customers, invoices, subscriptions, payments): config/console_home.py."""
    # deferred: console_home reads the product apps' models, not importable while settings load
    from config.console_home import search_results

    return search_results(request, search_term)


def dashboard_callback(request: HttpRequest, context: JsonDict) -> JsonDict:
    """The home page's figures, chart and "needs attention" lists: config/console_home.py."""
    # deferred: console_home reads the product apps' models, not importable while settings load
    from config.console_home import dashboard_context

    return dashboard_context(request, context)
