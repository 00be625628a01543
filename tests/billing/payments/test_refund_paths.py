"""Every refund path (payment refund, a credit note's refund share; console and API) is one rule.

Issue 13, hole 2: a credit note's refund share moved no money and skipped four-eyes and
the fresh two-factor code; the payment refund counted "refundable" per payment without
the credit notes' refunds, so a later refund succeeded at the gateway and then failed
to write its credit note. The approval threshold applies to what a payment has had
refunded in all, not to each refund.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Payment, Refund, SandboxRefund
from billing.services.refunds import RefundError, refund_approve, refund_request, refundable_amount
from config.api.keys import api_key_create
from invoices.models import CreditNote
from tests.billing.payments.conftest import VISA_OK
from tests.billing.payments.test_admin import next_code, refund_threshold, sign_in  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(charged, refund_threshold):  # noqa: F811 (fixture)
    """A card payment of 34.80 EUR (its invoice is paid); refunds above 10.00 need a second person."""
    _, invoice = charged(VISA_OK)
    return Payment.objects.get(invoice=invoice, status=Payment.Status.SUCCEEDED)


@pytest.fixture
def api(staff_factory):
    _key, raw = api_key_create(
        name="refund paths", scope="read_write", mode="live", created_by=staff_factory(username="integrations")
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def credit_note_form(console, payment, *, refund: str, otp_token: str = "", **parts):
    """The invoice's credit note page: an amount (tax included) refunded to the customer."""
    return console.post(
        reverse("admin:invoices_invoice_credit_note", args=[payment.invoice_id]),
        {
            "amount": refund,
            "destination": "refund",
            "reason": "order_change",
            "otp_token": otp_token,
            **parts,
        },
    )


def money_without_document() -> list[str]:
    """Gateway refunds that no executed refund with a credit note accounts for."""
    documented = set(
        Refund.objects.filter(status=Refund.Status.EXECUTED, credit_note__isnull=False).values_list(
            "gateway_reference", flat=True
        )
    )
    return [
        reference
        for reference in SandboxRefund.objects.values_list("reference", flat=True)
        if reference not in documented
    ]


# -- the console's credit note form ----------------------------------------------------------


def test_a_credit_note_refund_share_moves_the_money_at_the_gateway(paid, sign_in, now):  # noqa: F811
    # given a paid invoice of 34.80 and a finance member in the console
    alice = sign_in("alice")

    # when she issues a credit note of 8.00 that is all refund (below the threshold)
    response = credit_note_form(alice, paid, refund="8.00")

    # then 8.00 go back through the gateway and the credit note is the refund's document
    assert response.status_code == 302, response.content.decode()[-2000:]
    refund = Refund.objects.get()
    assert (refund.status, refund.amount, refund.payment_id) == (Refund.Status.EXECUTED, 800, paid.pk)
    assert SandboxRefund.objects.get().amount == 800
    assert (refund.credit_note.total, refund.credit_note.refunded) == (800, 800)
    paid.refresh_from_db()
    assert paid.amount_refunded == 800
    assert money_without_document() == []


def test_a_large_credit_note_refund_needs_a_fresh_code_and_a_second_person(paid, sign_in, now):  # noqa: F811
    alice = sign_in("alice")

    # when the refund share is above the threshold and no fresh code is given
    stale = credit_note_form(alice, paid, refund="30.00")

    # then nothing is issued and nothing moves
    assert stale.status_code == 200 and "fresh two-factor code" in stale.content.decode()
    assert not CreditNote.objects.exists() and not Refund.objects.exists()

    # when she gives a fresh code
    requested = credit_note_form(alice, paid, refund="30.00", otp_token=next_code(alice, now))

    # then the refund waits for a second person: no money, no credit note yet
    assert requested.status_code == 302
    refund = Refund.objects.get()
    assert (refund.status, refund.needs_approval, refund.requested_by) == (Refund.Status.REQUESTED, True, alice.user)
    assert SandboxRefund.objects.count() == 0 and not CreditNote.objects.exists()

    # and when another staff member approves, the money moves and the credit note is issued
    bruno = sign_in("bruno")
    bruno.post(reverse("admin:billing_refund_approve", args=[refund.pk]), {"otp_token": next_code(bruno, now)})
    refund.refresh_from_db()
    assert refund.status == Refund.Status.EXECUTED and refund.credit_note.refunded == 3000
    assert SandboxRefund.objects.get().amount == 3000


def test_a_refund_above_what_was_paid_is_refused(paid, sign_in, now):  # noqa: F811
    # the credit note page offers one destination per credit note: a refund is never mixed with
    # other credit; above what was paid (34.80) it is refused
    alice = sign_in("alice")

    response = credit_note_form(alice, paid, refund="34.81")

    assert response.status_code == 200
    assert "refund" in response.content.decode().lower()
    assert not CreditNote.objects.exists() and SandboxRefund.objects.count() == 0


# -- the threshold counts what the payment has had refunded in all ------------------------------


def test_the_threshold_applies_to_the_cumulative_refunds_of_a_payment(paid, staff_factory):
    alice = staff_factory(username="alice")

    # given 8.00 refunded at once (below the 10.00 threshold)
    first = refund_request(payment=paid, amount=800, reason="other", requested_by=alice, otp_verified_at=None)
    assert first.status == Refund.Status.EXECUTED

    # when 5.00 more are asked without a fresh code: 13.00 in all, above the threshold
    with pytest.raises(RefundError, match="fresh two-factor code"):
        refund_request(payment=paid, amount=500, reason="other", requested_by=alice, otp_verified_at=None)

    # then with a fresh code the second refund waits for a second person
    second = refund_request(
        payment=paid, amount=500, reason="other", requested_by=alice, otp_verified_at=timezone.now()
    )
    assert (second.status, second.needs_approval) == (Refund.Status.REQUESTED, True)
    assert SandboxRefund.objects.count() == 1


def test_the_api_credit_note_refund_counts_toward_the_threshold(paid, api):
    # given 8.00 refunded through a credit note over the API
    first = api.post(
        "/api/v1/credit_notes",
        {"invoice": f"in_{paid.invoice_id}", "amount": 800, "refund": 800, "reason": "duplicate"},
        format="json",
    )
    assert first.status_code == 201, first.content
    assert SandboxRefund.objects.get().amount == 800

    # when 5.00 more are refunded through the refunds endpoint (13.00 in all)
    second = api.post(
        "/api/v1/refunds", {"payment": f"pay_{paid.pk}", "amount": 500, "reason": "duplicate"}, format="json"
    )

    # then a staff approver is needed (an API key cannot give a fresh code) and nothing moves
    assert second.status_code == 403, second.content
    assert SandboxRefund.objects.count() == 1 and Refund.objects.count() == 1


# -- what is left to refund: one rule for every path ---------------------------------------------


def test_a_refund_after_a_credit_note_refund_cannot_exceed_what_is_left(paid, api, settings):
    # given 30.00 of the 34.80 refunded through a credit note over the API (no approval needed here)
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 10**9
    issued = api.post(
        "/api/v1/credit_notes",
        {"invoice": f"in_{paid.invoice_id}", "amount": 3000, "refund": 3000, "reason": "duplicate"},
        format="json",
    )
    assert issued.status_code == 201, issued.content
    assert refundable_amount(payment=paid) == 480

    # when 10.00 more are asked on the payment
    refused = api.post(
        "/api/v1/refunds", {"payment": f"pay_{paid.pk}", "amount": 1000, "reason": "duplicate"}, format="json"
    )

    # then it is refused before the gateway: no money leaves without its credit note
    assert refused.status_code == 422, refused.content
    assert "€4.80" in refused.json()["detail"]  # what is left, as money
    assert SandboxRefund.objects.count() == 1
    assert money_without_document() == []
    # and the 4.80 left can still be refunded
    rest = api.post(
        "/api/v1/refunds", {"payment": f"pay_{paid.pk}", "amount": 480, "reason": "duplicate"}, format="json"
    )
    assert rest.status_code == 201 and rest.json()["status"] == "executed"
    paid.refresh_from_db()
    assert paid.amount_refunded == 3480 and refundable_amount(payment=paid) == 0


@pytest.mark.django_db(transaction=True)  # the refused API write rolls back its own transaction
def test_a_pending_refund_keeps_its_share_of_the_invoice(paid, staff_factory, api):
    alice, bruno = staff_factory(username="alice"), staff_factory(username="bruno")
    # given a 30.00 refund awaiting approval
    pending = refund_request(
        payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=timezone.now()
    )

    # when the whole invoice is credited to the balance meanwhile
    other = api.post(
        "/api/v1/credit_notes",
        {"invoice": f"in_{paid.invoice_id}", "amount": 3480, "credit_to_balance": 3480, "reason": "other"},
        format="json",
    )

    # then only what the pending refund leaves can be credited
    assert other.status_code == 422, other.content
    assert not CreditNote.objects.exists()

    # and the approved refund moves the money and writes its credit note
    executed = refund_approve(refund=pending, approver=bruno, otp_verified_at=timezone.now())
    assert executed.status == Refund.Status.EXECUTED and executed.credit_note.refunded == 3000
    assert money_without_document() == []


def test_console_and_api_offer_the_same_refundable_amount(paid, sign_in, now):  # noqa: F811
    alice = sign_in("alice")
    # given a 30.00 refund awaiting approval on the 34.80 payment
    refund_request(payment=paid, amount=3000, reason="other", requested_by=alice.user, otp_verified_at=timezone.now())

    page = alice.get(reverse("admin:invoices_invoice_credit_note", args=[paid.invoice_id])).content.decode()

    # then the credit note form offers 4.80 to refund, the refunds service's rule
    assert refundable_amount(payment=paid) == 480
    assert "at most €4.80, what was paid and not refunded yet" in page


def test_the_payment_refund_form_offers_what_is_left_after_a_credit_note_refund(paid, sign_in, now):  # noqa: F811
    alice = sign_in("alice")
    # given 8.00 refunded through the invoice's credit note form
    credit_note_form(alice, paid, refund="8.00")

    page = alice.get(reverse("admin:billing_payment_refund", args=[paid.pk])).content.decode()

    # then the payment's refund form offers the 26.80 left
    assert "at most €26.80 left to refund" in page


# -- issue 14: one refundable rule, with what is left to credit ----------------------------------


def test_console_api_and_service_agree_on_a_partly_refunded_and_partly_credited_invoice(
    paid,
    sign_in,  # noqa: F811 (fixture)
    api,
    settings,
    now,
):
    from invoices.services.credit_notes import invoice_credit_room

    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 10**9
    alice = sign_in("alice")
    # given the 34.80 invoice credited 10.00 to the customer's balance, and 5.00 refunded
    credited = api.post(
        "/api/v1/credit_notes",
        {"invoice": f"in_{paid.invoice_id}", "amount": 1000, "credit_to_balance": 1000, "reason": "other"},
        format="json",
    )
    assert credited.status_code == 201, credited.content
    refunded = api.post(
        "/api/v1/refunds", {"payment": f"pay_{paid.pk}", "amount": 500, "reason": "duplicate"}, format="json"
    )
    assert refunded.status_code == 201 and refunded.json()["status"] == "executed", refunded.content

    # then every refund must still issue its credit note: 34.80 - 15.00 credited = 19.80 is left,
    # not the payment's 29.80, and the service, the console's two forms and the API all say 19.80
    assert invoice_credit_room(invoice=paid.invoice).refundable == 1980
    assert refundable_amount(payment=paid) == 1980
    payment_form = alice.get(reverse("admin:billing_payment_refund", args=[paid.pk])).content.decode()
    assert "at most €19.80 left to refund" in payment_form
    credit_note_page = alice.get(reverse("admin:invoices_invoice_credit_note", args=[paid.invoice_id])).content
    assert "at most €19.80, what was paid and not refunded yet" in credit_note_page.decode()
    too_much = api.post(
        "/api/v1/refunds", {"payment": f"pay_{paid.pk}", "amount": 1981, "reason": "duplicate"}, format="json"
    )
    assert too_much.status_code == 422, too_much.content
    assert "€19.80" in too_much.json()["detail"]  # what is left, as money
    rest = api.post(
        "/api/v1/refunds", {"payment": f"pay_{paid.pk}", "amount": 1980, "reason": "duplicate"}, format="json"
    )
    assert rest.status_code == 201 and rest.json()["status"] == "executed", rest.content
    assert refundable_amount(payment=paid) == 0
    assert money_without_document() == []


def test_the_credit_note_form_offers_what_a_refund_in_flight_leaves(paid, sign_in, now):  # noqa: F811
    alice = sign_in("alice")
    # given a 30.00 refund awaiting approval on the 34.80 invoice
    refund_request(payment=paid, amount=3000, reason="other", requested_by=alice.user, otp_verified_at=timezone.now())

    page = alice.get(reverse("admin:invoices_invoice_credit_note", args=[paid.invoice_id])).content.decode()

    # then the form offers the 4.80 credit_note_create would accept, not the invoice's 34.80
    assert "At most €4.80 (what is left to credit)." in page
    refused = credit_note_form(alice, paid, refund="5.00", destination="balance")
    assert "more than is left to credit on the invoice: at most €4.80" in refused.content.decode()
    assert not CreditNote.objects.exists()


# -- a failed refund's reason is data, not the approver's language ------------------------------


def test_a_failed_refund_keeps_a_code_and_english_whoever_approved_it(paid, staff_factory, api):
    from django.utils import translation

    from billing.models import SandboxCharge

    alice, bruno = staff_factory(username="alice"), staff_factory(username="bruno")
    # given a 30.00 refund requested and approved by staff working in French, while the whole
    # charge was refunded at the gateway meanwhile (outside Tarif)
    SandboxCharge.objects.filter(reference=paid.gateway_reference).update(amount_refunded=3480)
    with translation.override("fr"):
        pending = refund_request(
            payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=timezone.now()
        )
        failed = refund_approve(refund=pending, approver=bruno, otp_verified_at=timezone.now())

    # then the refund failed with a stable code and the gateway's reason in English
    assert failed.status == Refund.Status.FAILED
    assert (failed.failure_code, failed.failure_message) == (
        "refund_declined",
        "The refund exceeds what is left on the charge.",
    )
    # the API says so in English (its default) and French on request; the console in its reader's language
    body = api.get(f"/api/v1/refunds/re_{failed.pk}").json()
    assert (body["failure_code"], body["failure_message"]) == (failed.failure_code, failed.failure_message)
    with translation.override("fr"):
        assert failed.failure_text() == "Le remboursement dépasse ce qui reste sur le paiement."
    assert failed.failure_text() == failed.failure_message
    # and no money left, no credit note was written
    assert list(SandboxRefund.objects.values_list("status", flat=True)) == ["failed"]
    assert not CreditNote.objects.exists()


def test_a_refund_the_gateway_refuses_outright_is_recorded_in_english(paid, staff_factory):
    from django.utils import translation

    from billing.models import SandboxCharge

    alice, bruno = staff_factory(username="alice"), staff_factory(username="bruno")
    SandboxCharge.objects.filter(reference=paid.gateway_reference).update(status="failed")
    with translation.override("fr"):
        pending = refund_request(
            payment=paid, amount=3000, reason="other", requested_by=alice, otp_verified_at=timezone.now()
        )
        failed = refund_approve(refund=pending, approver=bruno, otp_verified_at=timezone.now())

    assert failed.status == Refund.Status.FAILED and failed.failure_code == "gateway_refused"
    assert failed.failure_message == f"No succeeded sandbox charge {paid.gateway_reference} to refund."
    assert not SandboxRefund.objects.exists()
