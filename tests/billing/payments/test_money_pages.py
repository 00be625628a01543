"""Money on the payments console (issue 15): payments, refunds, dunning and the refund
approval page read as money in French and English, never as minor units; the refund form
is typed in major units and refuses what is not an amount."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import DunningCase, Payment, Refund, SandboxRefund
from tests.billing.payments.conftest import DECLINED, VISA_OK
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
MONEY = {
    "fr": {"refund": "30,00\xa0€", "payment": "34,80\xa0€"},
    "en": {"refund": "€30.00", "payment": "€34.80"},
}


def visible_text(response) -> str:
    """The page as a reader sees it: no scripts, styles, tags or attributes."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.fixture
def sign_in(staff_factory, now):
    """sign_in(username) -> a finance client (the Finance role) through password + TOTP."""

    def make(username: str):
        user = staff_factory(username=username, first_name=username.capitalize())
        user.groups.add(Group.objects.get(name="Finance"))
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client = Client()
        client.post("/admin/login/", {"username": username, "password": PASSWORD})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        client.user, client.device = user, device
        return client

    return make


def next_code(client, now) -> str:
    now.shift(timedelta(seconds=31))
    return current_totp(client.device)


@pytest.fixture
def pending_refund(sign_in, charged, settings, now):
    """A 30.00 EUR refund of a 34.80 EUR payment, asked by alice, awaiting a second person."""
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 1000
    _, invoice = charged(VISA_OK)
    alice = sign_in("alice")
    payment = Payment.objects.get(invoice=invoice)
    alice.post(
        reverse("admin:billing_payment_refund", args=[payment.pk]),
        {"amount": "30.00", "reason": "order_change", "otp_token": next_code(alice, now)},
    )
    refund = Refund.objects.get()
    assert refund.status == Refund.Status.REQUESTED
    return refund, alice


@pytest.mark.parametrize("language", ["fr", "en"])
def test_refund_and_payment_pages_show_money_never_minor_units(sign_in, pending_refund, language):
    refund, _alice = pending_refund
    bruno = sign_in("bruno")
    expected = MONEY[language]
    pages = {
        "refund list": (reverse("admin:billing_refund_changelist"), [expected["refund"]]),
        "refund page": (
            reverse("admin:billing_refund_change", args=[refund.pk]),
            [expected["refund"], expected["payment"]],
        ),
        "approval": (
            reverse("admin:billing_refund_approve", args=[refund.pk]),
            [expected["refund"], expected["payment"]],
        ),
        "payment list": (reverse("admin:billing_payment_changelist"), [expected["payment"]]),
        "payment page": (reverse("admin:billing_payment_change", args=[refund.payment_id]), [expected["payment"]]),
    }

    for name, (url, amounts) in pages.items():
        response = bruno.get(url, HTTP_ACCEPT_LANGUAGE=language)
        text = visible_text(response)
        assert response.status_code == 200, name
        for amount in amounts:
            assert amount in text, (name, amount)
        assert "3000" not in text and "3480" not in text, name


def test_the_approval_page_says_who_asked_how_much_and_what_approving_does(sign_in, pending_refund, now):
    refund, alice = pending_refund
    bruno = sign_in("bruno")
    url = reverse("admin:billing_refund_approve", args=[refund.pk])

    page = bruno.get(url, HTTP_ACCEPT_LANGUAGE="en")
    text = visible_text(page)
    own = visible_text(alice.get(url, HTTP_ACCEPT_LANGUAGE="en"))

    assert "Alice" in text and "€30.00" in text
    assert "Approving sends €30.00 back to" in text and "credit note of €30.00" in text
    assert 'data-confirm="Refund €30.00 to' in page.content.decode()  # the confirmation states the consequence
    assert 'name="otp_token"' in page.content.decode()
    assert "You asked for this refund" in own and "You asked for this refund" not in text

    approved = bruno.post(url, {"otp_token": next_code(bruno, now)}, HTTP_ACCEPT_LANGUAGE="en", follow=True)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.EXECUTED and refund.decided_by == bruno.user
    assert SandboxRefund.objects.get().amount == 3000
    assert "Refund of €30.00: refunded." in visible_text(approved)


def test_the_approval_needs_the_approvers_own_code(sign_in, pending_refund):
    refund, _alice = pending_refund
    bruno = sign_in("bruno")

    refused = bruno.post(reverse("admin:billing_refund_approve", args=[refund.pk]), {"otp_token": "000000"})

    refund.refresh_from_db()
    assert refused.status_code == 200 and refund.status == Refund.Status.REQUESTED
    assert refused.context["form"].errors["otp_token"]


@pytest.mark.parametrize(
    ("language", "typed", "message"),
    [
        ("fr", "12,345", "12,345"),  # French: 12.345 EUR, one decimal too many (the message quotes it)
        ("en", "12.345", "more decimals"),
        ("en", "-5", "more than zero"),
        ("en", "0", "more than zero"),
        ("en", "trente", "is not an amount"),
        ("en", "99999999999999", "at most"),
    ],
)
def test_the_refund_form_refuses_what_is_not_an_amount(sign_in, charged, language, typed, message):
    _, invoice = charged(VISA_OK)
    alice = sign_in("alice")

    response = alice.post(
        reverse("admin:billing_payment_refund", args=[Payment.objects.get(invoice=invoice).pk]),
        {"amount": typed, "reason": "other", "otp_token": ""},
        HTTP_ACCEPT_LANGUAGE=language,
    )

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["amount"])
    assert not Refund.objects.exists()


def test_a_refund_above_what_is_left_says_so_in_money(sign_in, charged, now):
    _, invoice = charged(VISA_OK)
    alice = sign_in("alice")

    response = alice.post(
        reverse("admin:billing_payment_refund", args=[Payment.objects.get(invoice=invoice).pk]),
        {"amount": "40,00", "reason": "other", "otp_token": next_code(alice, now)},
        HTTP_ACCEPT_LANGUAGE="fr",
    )

    text = visible_text(response)
    assert response.status_code == 200 and not Refund.objects.exists()
    assert "34,80\xa0€" in text and "40,00\xa0€" in text
    assert "3480" not in text and "4000" not in text


@pytest.mark.parametrize(("language", "due"), [("fr", "34,80\xa0€"), ("en", "€34.80")])
def test_dunning_cases_show_the_amount_due(sign_in, charged, language, due):
    charged(DECLINED)
    camille = sign_in("camille")
    case = DunningCase.objects.get()

    for url in (
        reverse("admin:billing_dunningcase_changelist"),
        reverse("admin:billing_dunningcase_change", args=[case.pk]),
    ):
        text = visible_text(camille.get(url, HTTP_ACCEPT_LANGUAGE=language))
        assert due in text and "3480" not in text
