"""Every portal URL, walked by another customer's user: 404, never the other customer's data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import URLPattern, reverse

from billing.models import PaymentMethod
from billing.services.changes import subscription_change
from billing.services.subscriptions import ItemSpec
from customers import urls as portal_urls
from invoices.services.credit_notes import credit_note_create
from tests.billing.payments.conftest import T0
from tests.customers.portal.conftest import fresh_step_up

pytestmark = pytest.mark.django_db

# URL name -> which of the victim's objects fills its arguments (None: the URL takes none).
OBJECT_ARGUMENTS = {
    "home": None,
    "brand_logo": None,
    "invoices": None,
    "credits": None,
    "usage": None,
    "invoice": ("invoice",),
    "invoice_pdf": ("invoice",),
    "invoice_facturx": ("invoice",),
    "invoice_pay": ("invoice",),
    "credit_note_pdf": ("credit_note",),
    "credit_note_facturx": ("credit_note",),
    "change": ("subscription",),
    "change_preview": ("subscription",),
    "change_done": ("subscription", "change"),
    "cancel": ("subscription",),
    "renew": ("subscription",),
    "subscription_started": ("subscription",),
    "subscribe": None,
    "payment_methods": None,
    "add_card": None,
    "card_return": None,
    "add_sepa": None,
    "bank_transfer": None,
    "bank_transfer_use": None,
    "method_default": ("payment_method",),
    "method_remove": ("payment_method",),
    "details": None,
    "notification_preferences": None,
    "export": None,
    "verify": None,
    "login_verify": None,
    "security": None,
    "totp_enrol": None,
    "totp_disable": None,
    "recovery_codes": None,
    "impersonate": ("customer",),
    "impersonate_stop": None,
}

POST_ONLY = {"invoice_pay", "method_default", "impersonate", "renew"}


def test_every_portal_url_is_listed_here():
    names = {pattern.name for pattern in portal_urls.urlpatterns if isinstance(pattern, URLPattern)}
    assert names == set(OBJECT_ARGUMENTS), "add the new portal URL to OBJECT_ARGUMENTS (isolation test)"


@pytest.fixture
def victim(make_portal_account, plans, now):
    customer, user, subscription, invoice = make_portal_account(
        "victim@secret.example", legal_name="Victime Secrète SA"
    )
    credit_note = credit_note_create(invoice=invoice, amount=500, reason="other", at=T0 + timedelta(hours=1))
    change = subscription_change(
        subscription=subscription, items=[ItemSpec(plans["pro"], 1)], at=T0 + timedelta(hours=2)
    )
    return {
        "customer": customer,
        "subscription": subscription,
        "invoice": invoice,
        "credit_note": credit_note,
        "change": change,
        "payment_method": PaymentMethod.objects.get(customer=customer),
        "secrets": ("Victime Secrète SA", invoice.number, credit_note.number, "victim@secret.example"),
    }


@pytest.fixture
def intruder(client, make_portal_account, now):
    _customer, user, _subscription, _invoice = make_portal_account("intruder@client.example")
    client.force_login(user)
    fresh_step_up(client)  # even with every verification done, nothing of the victim's opens
    return client


@pytest.mark.parametrize("name", [name for name, arguments in OBJECT_ARGUMENTS.items() if arguments])
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_customers_objects_are_404(intruder, victim, name, method):
    args = [victim[argument].pk for argument in OBJECT_ARGUMENTS[name]]
    url = reverse(f"portal:{name}", args=args)

    response = getattr(intruder, method)(url, {"price": 1, "quantity": 1, "reason": "other"})

    # POST-only actions answer a GET with 405 before looking anything up; their POST is 404.
    assert response.status_code == (405 if method == "get" and name in POST_ONLY else 404)
    assert not any(secret in response.content.decode() for secret in victim["secrets"])


@pytest.mark.parametrize("name", [name for name, arguments in OBJECT_ARGUMENTS.items() if not arguments])
def test_pages_without_ids_show_only_the_users_own_customer(intruder, victim, name):
    response = intruder.get(reverse(f"portal:{name}"))

    assert response.status_code in (200, 302, 404, 405)
    body = response.content.decode() if not getattr(response, "streaming", False) else ""
    assert not any(secret in body for secret in victim["secrets"])


def test_the_victims_state_is_untouched_after_the_walk(intruder, victim):
    for name, arguments in OBJECT_ARGUMENTS.items():
        if arguments:
            intruder.post(reverse(f"portal:{name}", args=[victim[a].pk for a in arguments]), {"reason": "other"})
    victim["subscription"].refresh_from_db()
    victim["payment_method"].refresh_from_db()
    assert not victim["subscription"].cancel_at_period_end
    assert victim["payment_method"].active and victim["payment_method"].is_default
