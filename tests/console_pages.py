"""Every page of the operator console, enumerated from the admin registry and the URL conf
(like the portal's isolation test), the role users who open them, and a world with one
object of each kind so every change page has something to show (issue 15).

Used by tests/config/test_console_pages.py (Django client: statuses and permissions per
role) and tests/browser/test_console_pages.py (Chromium: overflow, console errors, French).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.modes import is_mode_scoped, object_livemode, scope_to_mode
from config.roles import ROLE_RULES, sync_role_groups
from tests.conftest import current_totp

PASSWORD = "correct horse battery staple"
ROLES = ("Finance", "Support", "Read-only")

# The standard pages of a ModelAdmin; anything else it serves is a custom page.
STANDARD_SUFFIXES = ("_changelist", "_add", "_change", "_delete", "_history")
# Custom URLs that are not pages a person opens: downloads, POST-only actions, machinery.
# A new custom page needs nothing here: it is opened with the first object of its model.
NOT_PAGES = {
    "djstripe_custom_action": "dj-stripe's sync buttons (POST, plumbing)",
    "otp_totp_totpdevice_config": "a TOTP device's otpauth URI (plumbing)",
    "otp_totp_totpdevice_qrcode": "a TOTP device's QR code image (plumbing)",
    "invoices_invoice_pdf": "a PDF download",
    "invoices_creditnote_pdf": "a PDF download",
    "quotes_quote_pdf_action": "a PDF download",
    "audit_auditentry_export": "a CSV download",
    "reports_dashboard_export": "a CSV/XLSX download",
}
NOT_PAGE_SUFFIXES = ("_process_import", "_autocomplete")
# Custom URLs whose GET is not a page of its own: what a GET answers instead, and why.
NOT_GET_PAGES: dict[str, tuple[frozenset[int], str]] = {
    "billing_bankstatementline_unmatched": (frozenset({302}), "a shortcut to the filtered list of lines"),
    "billing_billingrun_retry_failures": (frozenset({302, 405}), "a POST action"),
    "billing_testclock_advance": (frozenset({302, 405}), "a POST action"),
    "invoices_brand_preview": (frozenset({405}), "the brand form's live preview (POST)"),
    "invoices_brand_preview_add": (frozenset({405}), "the brand form's live preview (POST)"),
    "billing_subscription_create_preview": (frozenset({405}), "the subscription editor's live preview (POST)"),
    "billing_subscription_change_items_preview": (frozenset({405}), "the plan change's live preview (POST)"),
    # An invoice's actions depend on its state: offered on the right state (200), otherwise
    # refused (403) or sent back to the invoice with a message (302); never an error.
    "invoices_invoice_download_invoice_pdf": (
        frozenset({200, 302}),
        "a PDF download, or back to the invoice when none",
    ),
    "invoices_invoice_line_add": (frozenset({200, 302}), "drafts only"),
    "invoices_invoice_finalize_draft": (frozenset({200, 302, 403}), "drafts only"),
    "invoices_invoice_issue_credit_note": (frozenset({200, 302, 403}), "issued invoices only"),
    "invoices_invoice_record_payment": (frozenset({200, 302, 403}), "open invoices only"),
    "invoices_invoice_void_invoice": (frozenset({200, 302, 403}), "open invoices only"),
    "invoices_invoice_write_off": (frozenset({200, 302, 403}), "open invoices only"),
    # A quote's actions depend on its state, like an invoice's (issue 17 item 4).
    "quotes_quote_finalize_action": (frozenset({200, 302, 403}), "drafts only"),
    "quotes_quote_send_action": (frozenset({200, 302, 403}), "drafts and open quotes"),
    "quotes_quote_revise_action": (frozenset({200, 302, 403}), "open or expired quotes"),
    "quotes_quote_cancel_action": (frozenset({200, 302, 403}), "quotes not accepted or canceled"),
}
# Pages of the site itself (not of a model) that a signed-in person opens.
SITE_PAGES = {"admin:index": "index", "admin:password_change": "password", "operations": "operations"}
# Plumbing: registered for superusers, never in a role's navigation (docs/console.md).
PLUMBING_APPS = frozenset(
    {"auth", "otp_totp", "otp_static", "otp_email", "account", "axes", "djstripe", "django_celery_beat"}
)
PLUMBING_MODELS = frozenset({"events.eventcursor"})


@dataclass(frozen=True)
class ConsolePage:
    url: str
    name: str  # URL name, without the admin: namespace
    model: str | None  # app_label.model_name, None for the site's own pages
    kind: str  # changelist, add, change, custom, site
    test_data: bool = False  # the object lives in test mode: open it with the "Test data" switch on

    @property
    def app_label(self) -> str | None:
        return self.model.split(".")[0] if self.model else None

    @property
    def plumbing(self) -> bool:
        return self.app_label in PLUMBING_APPS or self.model in PLUMBING_MODELS

    def __str__(self) -> str:
        return self.url


def _first_object(model: type) -> Any:
    """The first live object (the console opens in live mode), else the first at all."""
    if not model._meta.managed:
        return None  # no table (the reports' dashboard only carries a permission)
    manager = model._default_manager
    if is_mode_scoped(model):
        live = scope_to_mode(manager.all(), livemode=True).order_by("pk").first()
        if live is not None:
            return live
    return manager.order_by("pk").first()


def _needs_test_data(model: type, instance: Any) -> bool:
    return instance is not None and is_mode_scoped(model) and not object_livemode(instance)


def _report_names() -> list[str]:
    from reports.admin import REPORTS

    return sorted(REPORTS)


def _custom_urls(pattern: URLPattern, model: type) -> list[str]:
    """The URLs of one custom page: its converters filled from the model's first object."""
    converters = list(pattern.pattern.converters)
    name = pattern.name
    if not converters:
        return [reverse(f"admin:{name}")]
    if converters == ["name"] and name.startswith("reports_"):
        return [reverse(f"admin:{name}", args=[report]) for report in _report_names()]
    if len(converters) == 1:
        instance = _first_object(model)
        if instance is None:
            return []
        return [reverse(f"admin:{name}", kwargs={converters[0]: instance.pk})]
    return []


def console_pages(*, include_plumbing: bool = True) -> list[ConsolePage]:
    """Every page of the console: each registered model's list, add form, one change page and
    custom pages, and the site's own pages. Needs the database (change pages take a real id)."""
    pages: list[ConsolePage] = [
        ConsolePage(reverse(url_name), url_name.removeprefix("admin:"), None, "site") for url_name in SITE_PAGES
    ]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if not include_plumbing and (opts.app_label in PLUMBING_APPS or opts.label_lower in PLUMBING_MODELS):
            continue
        label = opts.label_lower
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not isinstance(pattern, URLPattern) or not name:
                continue
            if name in NOT_PAGES or name.endswith(NOT_PAGE_SUFFIXES):
                continue
            if name.endswith(("_delete", "_history")):
                continue
            if name.endswith("_changelist"):
                pages.append(ConsolePage(reverse(f"admin:{name}"), name, label, "changelist"))
            elif name.endswith("_add") and name == f"{opts.app_label}_{opts.model_name}_add":
                pages.append(ConsolePage(reverse(f"admin:{name}"), name, label, "add"))
            elif name == f"{opts.app_label}_{opts.model_name}_change":
                instance = _first_object(model)
                if instance is not None:
                    url = reverse(f"admin:{name}", args=[instance.pk])
                    pages.append(ConsolePage(url, name, label, "change", _needs_test_data(model, instance)))
            else:
                test_data = bool(pattern.pattern.converters) and _needs_test_data(model, _first_object(model))
                pages.extend(ConsolePage(url, name, label, "custom", test_data) for url in _custom_urls(pattern, model))
    unique: dict[str, ConsolePage] = {}
    for page in pages:
        unique.setdefault(page.url, page)
    return sorted(unique.values(), key=lambda page: page.url)


def navigation_models() -> set[str]:
    """The models whose lists the sidebar links to (config/console_nav.py), as app_label.model_name."""
    from django.test import RequestFactory
    from django.urls import resolve

    from config.console_nav import navigation
    from tests.factories import StaffFactory

    request = RequestFactory().get("/admin/")
    request.user = StaffFactory.build(is_superuser=True)
    found = set()
    for group in navigation(request):
        for item in group["items"]:
            match = resolve(item["link"])
            model = re.fullmatch(r"(\w+?)_([a-z]+)_changelist", match.url_name or "")
            if model and model[0] != "reports_dashboard_changelist":
                found.add(f"{model[1]}.{model[2]}")
    return found


def role_grants(role: str, app_label: str | None, action: str) -> bool:
    """What config/roles.py grants a role on an app (the oracle, independent of the admin code)."""
    if app_label is None:
        return True
    return action in ROLE_RULES[role].get(app_label, ())


# -- role users ---------------------------------------------------------------------------------


def role_user(role: str, *, username: str | None = None) -> Any:
    """A staff member of one role group (or a superuser for role "Superuser"), with a TOTP device."""
    from tests.factories import StaffFactory

    sync_role_groups(group_model=Group, permission_model=Permission)
    name = username or re.sub(r"\W", "", role.lower())
    user = StaffFactory(username=name, is_superuser=role == "Superuser")
    if role != "Superuser":
        user.groups.add(Group.objects.get(name=role))
    TOTPDevice.objects.get_or_create(user=user, name="phone", defaults={"confirmed": True})
    return user


def signed_in_client(user: Any, *, language: str = "en") -> Client:
    """A Django test client through the real password + TOTP sign-in."""
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    device = TOTPDevice.objects.get(user=user, name="phone")
    verified = client.post("/admin/otp/verify/", {"otp_token": current_totp(device)})
    assert verified.status_code == 302, f"{user.username} should pass the TOTP step"
    return client


# -- one object of every kind --------------------------------------------------------------------

MONTHLY = {"kind": "interval", "unit": "month", "count": 1}
# The money pages' known value: 150,00 € in French, €150.00 in English; never "15000".
KNOWN_AMOUNT = 15000


def console_world() -> dict[str, Any]:
    """One object of each model the navigation lists, made through the services where one
    exists (the invoice, its credit note, the refund) and directly otherwise."""
    from billing.entitlements.models import Feature, ProductFeature
    from billing.models import (
        BankStatement,
        BankStatementLine,
        BillingRun,
        Coupon,
        DunningCase,
        InvoiceItem,
        PaymentMethod,
        PromotionCode,
        ScheduledChange,
        StripeImportRun,
        Subscription,
        SubscriptionChange,
        SubscriptionItem,
        TestClock,
        UsageEvent,
        WebhookDelivery,
        WebhookEndpoint,
    )
    from billing.services.payments import payment_record_manual
    from billing.services.refunds import refund_request
    from config.api.keys import api_key_create
    from config.audit.models import AuditEntry
    from config.events.models import DomainEvent
    from customers.models import CustomerUser, NotificationLog
    from feedback.models import Question, Survey, SurveyResponse, Trigger
    from invoices.models import CreditNote, InvoiceCustomField, InvoiceLine
    from invoices.services.credit_notes import credit_note_create
    from invoices.services.drafts import invoice_create
    from invoices.services.finalize import invoice_finalize
    from invoices.types import DraftInvoice, DraftLine
    from tests.factories import (
        BrandFactory,
        CustomerFactory,
        MeterFactory,
        PriceFactory,
        ProductFactory,
        StaffFactory,
        TaxRateFactory,
        UserFactory,
    )

    at = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    TaxRateFactory(country="FR", percentage=Decimal(20))
    brand = BrandFactory(slug="atelier-nuage", is_default=True)
    customer = CustomerFactory(brand=brand, legal_name="Boulangerie Martin SARL", email="compta@martin.example")
    product = ProductFactory(name="Nuage Pro")
    price = PriceFactory(product=product, nickname="Pro mensuel", lookup_key="pro-monthly", unit_amount=Decimal(4900))
    meter = MeterFactory(key="appels_api", name="Appels API")
    PriceFactory(product=ProductFactory(name="Nuage API"), lookup_key="api-metered", meter=meter,
                 usage_type="metered", unit_amount=Decimal("0.5"))  # fmt: skip
    subscription = Subscription.objects.create(
        customer=customer,
        status=Subscription.Status.ACTIVE,
        currency="EUR",
        cycle=MONTHLY,
        billing_cycle_anchor=at,
        current_period_start=at,
        current_period_end=at + timedelta(days=30),
    )
    SubscriptionItem.objects.create(subscription=subscription, price=price, quantity=3)
    SubscriptionChange.objects.create(subscription=subscription, kind=SubscriptionChange.Kind.CREATE, effective_at=at)
    ScheduledChange.objects.create(
        subscription=subscription,
        effective_at=subscription.current_period_end,
        items=[{"price": price.pk, "quantity": 1}],
    )
    coupon = Coupon.objects.create(name="Bienvenue", percent_off=Decimal(10))
    PromotionCode.objects.create(coupon=coupon, code="BIENVENUE10")
    UsageEvent.objects.create(customer=customer, meter=meter, external_id="evt-1", value=Decimal(3), timestamp=at)
    InvoiceItem.objects.create(customer=customer, description="Frais de mise en service", amount=2500, currency="EUR")
    BillingRun.objects.create(as_of=at, total=10, processed=4)
    TestClock.objects.create(name="Horloge de démo", frozen_time=at)
    DomainEvent.objects.create(
        type="customer.subscription.created", object_type="subscription", object_id=str(subscription.pk), occurred_at=at
    )

    # An invoice of 150,00 € net (+ 20 % VAT), issued; a credit note of one line; a paid card charge.
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(DraftLine(kind=InvoiceLine.Kind.ONE_OFF, description="Accompagnement", amount=KNOWN_AMOUNT),),
    )
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=at, customer=customer), at=at)
    credit_note_create(
        invoice=invoice,
        amount=1200,
        credit_to_balance=1200,
        reason=CreditNote.Reason.PRODUCT_UNSATISFACTORY,
        memo="Geste commercial",
        at=at + timedelta(hours=1),
    )
    InvoiceCustomField.objects.create(customer=customer, label="Bon de commande", value="BC-1")
    # Prepaid credits (issue 16, wallets): granted after the invoice, which keeps its amounts.
    from billing.wallets.services import GrantRequest, credit_grant_create

    credit_grant_create(
        customer=customer,
        request=GrantRequest(amount=5000, currency="EUR", name="Bienvenue", reason="Geste commercial"),
        at=at + timedelta(hours=2),
    )
    PaymentMethod.objects.create(
        customer=customer, kind="card", gateway="sandbox", token="pm_sandbox_x", brand="visa", last4="4242",
        exp_month=12, exp_year=2031, is_default=True,
    )  # fmt: skip
    invoice.refresh_from_db()
    payment = payment_record_manual(
        invoice=invoice, amount=invoice.amount_remaining, method="bank_transfer", reference="VIR-MARTIN", at=at
    )
    # A refund of 150,00 € asked by one finance member: above the threshold, it waits for a second one.
    requester = StaffFactory(username="requester")
    refund = refund_request(
        payment=payment, amount=KNOWN_AMOUNT, reason="duplicate", requested_by=requester,
        otp_verified_at=timezone.now(), memo="Double facturation",
    )  # fmt: skip
    DunningCase.objects.create(invoice=invoice, customer=customer, started_at=at, schedule_days=[1, 3])
    statement = BankStatement.objects.create(
        account="FR7630006000011234567890189", statement_id="RELEVE-2026-11", source_format="camt053",
        file_checksum="0" * 64, imported_at=at,
    )  # fmt: skip
    BankStatementLine.objects.create(
        statement=statement, sequence=1, fingerprint="b" * 64, booking_date=at.date(), amount=KNOWN_AMOUNT,
        currency="EUR", debtor_name="Boulangerie Martin", remittance_info="Virement sans référence",
        status_reason="No payment reference and no invoice number in the text.",
    )  # fmt: skip
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/tarif", secret="whsec_test")
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=DomainEvent.objects.order_by("pk").first(),
        object_key=f"subscription:{subscription.pk}",
    )
    portal_user = UserFactory(username="client-martin", email="client@martin.example")
    CustomerUser.objects.create(user=portal_user, customer=customer)
    NotificationLog.objects.create(customer=customer, kind="invoice_finalized", dedupe_key="invoice:1",
                                   recipient=customer.email, subject="Votre facture")  # fmt: skip
    survey = Survey.objects.create(
        name="NPS trimestriel", title_fr="Votre avis compte", title_en="Your opinion matters", trigger=Trigger.MANUAL
    )
    Question.objects.create(survey=survey, kind=Question.Kind.NPS, text_fr="Nous recommanderiez-vous ?",
                            text_en="Would you recommend us?", position=1)  # fmt: skip
    SurveyResponse.objects.create(survey=survey, customer=customer, trigger=Trigger.MANUAL, language="fr",
                                  submitted_at=at)  # fmt: skip
    api_key_create(name="ERP", scope="read", mode="live", created_by=requester)
    # Issue 16: a feature the product grants (entitlements).
    feature = Feature.objects.create(lookup_key="sso", name="Single sign-on")
    ProductFeature.objects.create(product=price.product, feature=feature)
    # Issue 17: a pricing table and a payment link (storefront).
    from tests.billing.storefront.world import storefront_world

    storefront_world(price=price)
    StripeImportRun.objects.create(
        account_id="acct_1Example", livemode=False, status="done", key_hint="sk_test_…6789",
        counts={"customers": {"created": 3}},
        report=[{"type": "prices", "id": "price_1", "code": "transform_quantity", "reason": "Not mapped."}],
    )  # fmt: skip
    # Issue 17: an open checkout session (read-only in the console).
    from billing.checkout.services import checkout_session_create

    checkout_session_create(
        brand=brand, livemode=True, mode="subscription", line_items=[(price, 1)],
        success_url="https://shop.example/ok", cancel_url="https://shop.example/pricing",
    )  # fmt: skip
    # Issue 17 item 4: an open quote (numbered in the brand's quote series).
    from billing.quotes.services import QuoteLineInput, quote_create, quote_finalize

    quote = quote_create(customer=customer, lines=[QuoteLineInput(price=price, quantity=2)], terms="Net 30")
    quote_finalize(quote=quote)
    AuditEntry.objects.create(
        action="refund.requested", actor=requester, actor_repr="requester", target_type="billing.refund",
        target_id=str(refund.pk), target_repr=str(refund),
    )  # fmt: skip
    return {
        "customer": customer,
        "subscription": subscription,
        "invoice": invoice,
        "payment": payment,
        "refund": refund,
        "statement": statement,
        "price": price,
    }
