"""Hostile input on the portal's forms (billing details, plan change and its live preview,
cancellation reason): never a 5xx, never stored XSS in the portal, the console or the invoice.

The console and sign-in forms get the same treatment in tests/ops/test_hostile_input.py,
the API in tests/api/test_hostile_input.py.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Subscription, SubscriptionChange
from tests.customers.portal.conftest import fresh_step_up
from tests.ops.test_hostile_input import AMOUNTS, HOSTILE

pytestmark = pytest.mark.django_db

XSS = '<script>alert("tarif-xss")</script>'
XSS_ATTRIBUTE = '"><img src=x onerror=alert("tarif-xss")>'
hostile_text = st.one_of(st.sampled_from([*HOSTILE, XSS, XSS_ATTRIBUTE]), st.text(max_size=300))
fuzz = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
DETAIL_FIELDS = ("address_line1", "address_line2", "postal_code", "city", "region", "tax_id", "invoice_email")


@pytest.fixture
def staff_console(staff_with_totp):
    """The console in a client of its own (`portal` holds the default client's customer session)."""
    from tests.conftest import current_totp

    user, device = staff_with_totp
    client = Client()
    client.post("/admin/login/", {"username": user.username, "password": "correct horse battery staple"})
    assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
    return client


def assert_escaped(html: str, where: str) -> None:
    assert XSS not in html, f"raw <script> in {where}"
    assert "<img src=x" not in html, f"raw <img> in {where}"


def details(customer, **changes) -> dict[str, str]:
    return {"email": customer.email, "country": "FR", "preferred_language": "fr", **changes}


@fuzz
@given(field=st.sampled_from(DETAIL_FIELDS), value=hostile_text, email=hostile_text)
def test_billing_details_never_fail_on_hostile_text(portal, account, field, value, email):
    customer = account[0]
    fresh_step_up(portal)

    response = portal.post(reverse("portal:details"), details(customer, **{field: value}))
    with_email = portal.post(reverse("portal:details"), details(customer, email=email))

    assert response.status_code in (200, 302) and with_email.status_code in (200, 302)
    assert_escaped(portal.get(reverse("portal:details")).content.decode(), "portal details")


def test_markup_saved_in_billing_details_is_escaped_in_portal_console_and_invoice(portal, account, staff_console):
    customer, user, subscription, invoice = account
    fresh_step_up(portal)

    saved = portal.post(
        reverse("portal:details"), details(customer, address_line1=XSS, address_line2=XSS_ATTRIBUTE, city=XSS)
    )

    assert saved.status_code == 302
    customer.refresh_from_db()
    assert (customer.address_line1, customer.city) == (XSS, XSS)  # stored as typed, escaped when shown
    portal_client = Client()
    portal_client.force_login(user)
    pages = {
        "portal details": portal_client.get(reverse("portal:details")),
        "portal overview": portal_client.get(reverse("portal:home")),
        "console customer page": staff_console.get(reverse("admin:customers_customer_change", args=[customer.pk])),
    }
    for where, page in pages.items():
        assert page.status_code == 200, where
        assert_escaped(page.content.decode(), where)
    assert "&lt;script&gt;" in pages["console customer page"].content.decode()

    from invoices.rendering.context import invoice_document
    from invoices.rendering.html import document_html
    from invoices.services.documents import buyer_snapshot

    # The next invoice copies the new address: its document shows it escaped.
    invoice.issued_snapshot = {**invoice.issued_snapshot, "buyer": buyer_snapshot(customer)}
    html = document_html(invoice_document(invoice=invoice, lines=list(invoice.lines.all())), for_pdf=False)
    assert_escaped(html, "invoice document")
    assert "&lt;script&gt;" in html


@fuzz
@given(price=st.one_of(hostile_text, st.sampled_from(AMOUNTS)), quantity=st.sampled_from([*AMOUNTS, *HOSTILE[:4]]))
def test_plan_change_and_its_preview_refuse_hostile_input_cleanly(portal, account, price, quantity):
    subscription = account[2]
    changes_before = SubscriptionChange.objects.count()

    preview = portal.get(
        reverse("portal:change_preview", args=[subscription.pk]),
        {"price": price[:5000], "quantity": quantity},
        HTTP_HX_REQUEST="true",
    )
    change = portal.post(
        reverse("portal:change", args=[subscription.pk]),
        {"price": price[:5000], "quantity": quantity, "confirmed": "1"},
    )

    assert preview.status_code == 200 and "preview-error" in preview.content.decode()
    assert_escaped(preview.content.decode(), "change preview")
    assert change.status_code == 200  # shown again with its errors
    assert SubscriptionChange.objects.count() == changes_before


@pytest.mark.parametrize("quantity", ["100001", str(2**63), "-5", "0"])
def test_out_of_range_quantities_with_a_real_plan_are_refused(portal, account, plans, quantity):
    subscription = account[2]
    changes_before = SubscriptionChange.objects.count()

    preview = portal.get(
        reverse("portal:change_preview", args=[subscription.pk]),
        {"price": plans["pro"].pk, "quantity": quantity},
        HTTP_HX_REQUEST="true",
    )
    change = portal.post(
        reverse("portal:change", args=[subscription.pk]),
        {"price": plans["pro"].pk, "quantity": quantity, "confirmed": "1"},
    )

    assert "preview-error" in preview.content.decode()
    assert change.status_code == 200
    assert SubscriptionChange.objects.count() == changes_before


@fuzz
@given(reason=hostile_text)
def test_cancellation_refuses_hostile_reason_codes(portal, account, reason):
    subscription = account[2]
    fresh_step_up(portal)

    response = portal.post(reverse("portal:cancel", args=[subscription.pk]), {"reason": reason, "comment": reason})

    assert response.status_code == 200  # not one of the offered reasons: shown again
    assert_escaped(response.content.decode(), "cancel form")
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end


def test_a_hostile_cancellation_comment_is_stored_bounded_and_shown_escaped(portal, account, staff_console):
    subscription = account[2]
    fresh_step_up(portal)
    url = reverse("portal:cancel", args=[subscription.pk])

    too_long = portal.post(url, {"reason": "other", "comment": "A" * 100_000})
    saved = portal.post(url, {"reason": "other", "comment": XSS})

    assert too_long.status_code == 200  # over 500 characters: refused with an error
    assert saved.status_code == 302
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end and subscription.cancellation_reason == f"other: {XSS}"
    assert subscription.status == Subscription.Status.ACTIVE
    page = staff_console.get(reverse("admin:billing_subscription_change", args=[subscription.pk]))
    assert page.status_code == 200
    assert_escaped(page.content.decode(), "console subscription page")
