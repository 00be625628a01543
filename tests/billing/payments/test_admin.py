"""The payments console: pages, refund with a fresh OTP and four-eyes, manual payments, retry now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import DunningCase, Payment, Refund, SandboxRefund
from billing.services.payments import payment_method_attach
from config.events.models import DomainEvent
from invoices.models import Invoice
from tests.billing.payments.conftest import DECLINED, T0, VISA_OK, card
from tests.conftest import current_totp

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def sign_in(staff_factory, now):
    """sign_in(username) -> a client through password + TOTP, and the user's device."""

    def make(username: str):
        user = staff_factory(username=username, is_superuser=True)
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        client = Client()
        client.post("/admin/login/", {"username": username, "password": PASSWORD})
        assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
        client.user, client.device = user, device
        return client

    return make


@pytest.fixture
def refund_threshold(settings):
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 1000


def next_code(client, now, seconds: int = 31) -> str:
    """Each code works once: the refund form needs the next one."""
    now.shift(timedelta(seconds=seconds))
    return current_totp(client.device)


def test_the_payment_pages_show_every_row(sign_in, charged):
    console = sign_in("camille")
    charged(DECLINED)

    for name in ("payment", "paymentmethod", "dunningcase", "refund"):
        page = console.get(reverse(f"admin:billing_{name}_changelist"))
        assert page.status_code == 200, name
    payment = Payment.objects.get()
    page = console.get(reverse("admin:billing_payment_change", args=[payment.pk]))
    assert b"generic_decline" in page.content


def test_a_large_refund_needs_a_fresh_code_and_a_second_person(sign_in, charged, refund_threshold, now):
    _, invoice = charged(VISA_OK)
    payment = Payment.objects.get(invoice=invoice)
    alice = sign_in("alice")
    url = reverse("admin:billing_payment_refund", args=[payment.pk])

    # the code used to sign in does not count as a fresh verification
    reused = alice.post(url, {"amount": "30.00", "reason": "other", "otp_token": current_totp(alice.device)})
    assert reused.status_code == 200 and not Refund.objects.exists()

    requested = alice.post(url, {"amount": "30.00", "reason": "other", "otp_token": next_code(alice, now)})
    refund = Refund.objects.get()
    assert requested.status_code == 302
    assert (refund.status, refund.amount, refund.requested_by) == (Refund.Status.REQUESTED, 3000, alice.user)

    own = alice.post(reverse("admin:billing_refund_approve", args=[refund.pk]), {"otp_token": next_code(alice, now)})
    assert own.status_code == 200 and "someone other than" in own.content.decode()
    assert SandboxRefund.objects.count() == 0

    bruno = sign_in("bruno")
    approved = bruno.post(
        reverse("admin:billing_refund_approve", args=[refund.pk]), {"otp_token": next_code(bruno, now)}
    )
    refund.refresh_from_db()
    assert approved.status_code == 302
    assert refund.status == Refund.Status.EXECUTED and refund.decided_by == bruno.user
    assert SandboxRefund.objects.get().amount == 3000
    assert list(DomainEvent.objects.filter(object_type="refund").values_list("type", "acting_user__username")) == [
        ("refund.requested", "alice"),
        ("refund.approved", "bruno"),
        ("refund.executed", "bruno"),
    ]


def test_a_verification_goes_stale(sign_in, charged, refund_threshold, now):
    _, invoice = charged(VISA_OK)
    payment = Payment.objects.get(invoice=invoice)
    alice = sign_in("alice")
    url = reverse("admin:billing_payment_refund", args=[payment.pk])
    alice.post(url, {"amount": "1.00", "reason": "other", "otp_token": next_code(alice, now)})  # small: executed

    now.shift(timedelta(minutes=10))
    stale = alice.post(url, {"amount": "30.00", "reason": "other", "otp_token": ""})

    assert stale.status_code == 200 and "fresh two-factor code" in stale.content.decode()
    assert Refund.objects.count() == 1


def test_a_rejection_from_the_console(sign_in, charged, refund_threshold, now):
    _, invoice = charged(VISA_OK)
    alice, bruno = sign_in("alice"), sign_in("bruno")
    alice.post(
        reverse("admin:billing_payment_refund", args=[Payment.objects.get(invoice=invoice).pk]),
        {"amount": "30.00", "reason": "other", "otp_token": next_code(alice, now)},
    )
    refund = Refund.objects.get()

    bruno.post(
        reverse("admin:billing_refund_reject", args=[refund.pk]),
        {"otp_token": next_code(bruno, now), "note": "no"},
    )

    refund.refresh_from_db()
    assert refund.status == Refund.Status.REJECTED and refund.decision_note == "no"
    assert SandboxRefund.objects.count() == 0


def test_record_a_partial_manual_payment(sign_in, subscribe):
    console = sign_in("camille")
    _, invoice = subscribe(None)
    invoice.refresh_from_db()

    response = console.post(
        reverse("admin:billing_payment_record_manual"),
        {"invoice_number": invoice.number, "amount": "10.00", "method": "cheque", "reference": "CHQ 12"},
    )

    invoice.refresh_from_db()
    assert response.status_code == 302
    assert (invoice.amount_paid, invoice.status) == (1000, Invoice.Status.OPEN)
    assert Payment.objects.get().recorded_by == console.user


def test_retry_now_from_the_dunning_list(sign_in, charged):
    console = sign_in("camille")
    subscription, invoice = charged(DECLINED)
    payment_method_attach(customer=subscription.customer, source=card(VISA_OK))
    case = DunningCase.objects.get()

    console.post(
        reverse("admin:billing_dunningcase_changelist"),
        {"action": "retry_now", "_selected_action": [case.pk]},
    )

    invoice.refresh_from_db()
    case.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and case.status == DunningCase.Status.RECOVERED
    assert invoice.paid_at == T0  # the console acts in real time (frozen here)


def test_reconciliation_finds_an_invoice_by_its_transfer_reference(sign_in, subscribe):
    from billing.services.payments import bank_transfer_reference

    console = sign_in("camille")
    subscription, invoice = subscribe(None, collection_method="send_invoice", days_until_due=30)
    invoice.refresh_from_db()
    reference = bank_transfer_reference(customer=subscription.customer)
    subscribe(None, collection_method="send_invoice", days_until_due=30)  # another customer's

    page = console.get(reverse("admin:billing_payment_reconciliation"), {"q": reference})

    content = page.content.decode()
    assert page.status_code == 200
    assert invoice.number in content and content.count("Record payment") == 1
    record = console.get(f"{reverse('admin:billing_payment_record_manual')}?invoice_number={invoice.number}")
    assert invoice.number in record.content.decode()
