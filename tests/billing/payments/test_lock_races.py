"""Dunning and refunds raced on PostgreSQL under the one lock order (docs/billing.md, "Lock order").

Each test runs two services at the same moment (threads, a barrier, one side slowed while
it holds its locks, see tests/billing/services/test_races.py) and checks that neither is
chosen as a deadlock victim, that exactly one outcome wins, and that the money adds up.
The suite's lock-order checker is on in these threads too.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import DunningCase, Payment, Refund, SandboxCharge, SandboxRefund, Subscription
from billing.services import dunning, refunds
from billing.services.dunning import dunning_run_due
from billing.services.payments import invoice_collect, payment_method_attach
from billing.services.refunds import RefundError, refund_approve, refund_reject, refund_request
from billing.services.subscriptions import subscription_cancel
from invoices.errors import CreditNoteError
from invoices.models import CreditNote, Invoice
from invoices.services.credit_notes import credit_note_create
from tests.billing.payments.conftest import DECLINED, T0, VISA_OK, card
from tests.billing.services.test_races import errors_of, race, slowed

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def no_deadlock(results):
    failures = [result for result in results if isinstance(result, Exception) and "deadlock" in str(result)]
    assert failures == [], failures


@pytest.fixture
def paid(postgres_only, subscribe, staff_factory, settings):
    """A 34.80 EUR invoice paid by card; refunds above 10.00 in all need a second person."""
    settings.TARIF_REFUND_APPROVAL_THRESHOLD = 1000
    subscription, invoice = subscribe(VISA_OK)
    invoice_collect(invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    return invoice, Payment.objects.get(invoice=invoice)


def test_an_approval_and_a_rejection_at_once_one_decision_wins(paid, staff_factory, monkeypatch):
    # given a 20.00 refund waiting for a second person
    _, payment = paid
    alice, bruno, chloe = (staff_factory(username=name) for name in ("alice", "bruno", "chloe"))
    refund = refund_request(
        payment=payment, amount=2000, reason="other", requested_by=alice, otp_verified_at=timezone.now()
    )
    assert refund.status == Refund.Status.REQUESTED
    slowed(monkeypatch, refunds, "_event")

    # when one approver approves while another rejects
    results = race(
        lambda: refund_approve(refund=refund, approver=bruno, otp_verified_at=timezone.now()),
        lambda: refund_reject(refund=refund, approver=chloe, note="not ours"),
    )

    # then one decision is taken, the other refused, and money leaves only on an approval
    no_deadlock(results)
    assert len(errors_of(results, RefundError)) == 1
    refund.refresh_from_db()
    payment.refresh_from_db()
    if refund.status == Refund.Status.EXECUTED:
        assert [r.amount for r in SandboxRefund.objects.all()] == [2000] and payment.amount_refunded == 2000
        assert CreditNote.objects.get().refunded == 2000
    else:
        assert refund.status == Refund.Status.REJECTED and refund.decided_by == chloe
        assert not SandboxRefund.objects.exists() and payment.amount_refunded == 0
        assert not CreditNote.objects.exists()


def test_a_refund_and_a_credit_note_at_once_never_credit_more_than_the_invoice(paid, staff_factory, monkeypatch):
    # given a paid 34.80 invoice, a refund of 8.00 and a 30.00 credit note to the balance (38.00 in all)
    invoice, payment = paid
    alice = staff_factory(username="alice")
    slowed(monkeypatch, refunds, "refundable_amount")

    # when both are asked for at the same moment
    results = race(
        lambda: refund_request(payment=payment, amount=800, reason="other", requested_by=alice, otp_verified_at=None),
        lambda: credit_note_create(invoice=invoice, amount=3000, credit_to_balance=3000, reason="other"),
    )

    # then the one that came second is refused: the invoice is never credited beyond its total
    no_deadlock(results)
    refused = errors_of(results, RefundError) + errors_of(results, CreditNoteError)
    assert len(refused) == 1, results
    credited = sum(CreditNote.objects.filter(invoice=invoice).values_list("total", flat=True))
    assert credited <= invoice.total
    payment.refresh_from_db()
    refunded = sum(SandboxRefund.objects.values_list("amount", flat=True))
    assert payment.amount_refunded == refunded and refunded in (0, 800)
    # what is left to refund is capped by what is left to credit (one refundable rule, issue 14)
    assert refunds.refundable_amount(payment=payment) == min(payment.amount - refunded, invoice.total - credited)


def test_two_refunds_of_one_payment_at_once_never_exceed_what_is_left(paid, staff_factory, monkeypatch):
    # given a 34.80 payment and no approval needed for these amounts
    _, payment = paid
    alice, bruno = staff_factory(username="alice"), staff_factory(username="bruno")
    slowed(monkeypatch, refunds, "refundable_amount")

    # when two staff members refund 9.00 and 30.00 at once (39.00 > 34.80)
    results = race(
        lambda: refund_request(payment=payment, amount=900, reason="other", requested_by=alice, otp_verified_at=None),
        lambda: refund_request(
            payment=payment, amount=3000, reason="other", requested_by=bruno, otp_verified_at=timezone.now()
        ),
    )

    # then exactly one is paid back
    no_deadlock(results)
    succeeded = [r for r in results if isinstance(r, Refund) and r.status in (Refund.Status.EXECUTED,)]
    waiting = [r for r in results if isinstance(r, Refund) and r.status == Refund.Status.REQUESTED]
    assert len(errors_of(results, RefundError)) == 1, results
    assert len(succeeded) + len(waiting) == 1
    payment.refresh_from_db()
    assert payment.amount_refunded + sum(r.amount for r in waiting) <= payment.amount


@pytest.fixture
def in_dunning(postgres_only, charged, now):
    """A declined first charge (case open, subscription past due); the customer's card now works."""
    subscription, invoice = charged(DECLINED)
    assert subscription.status == Subscription.Status.PAST_DUE
    payment_method_attach(customer=subscription.customer, source=card(VISA_OK))  # its on_commit retry is not run
    now.move_to(T0 + timedelta(days=1, minutes=5))
    return subscription, invoice


def test_a_dunning_retry_and_a_cancellation_at_once(in_dunning, monkeypatch):
    subscription, invoice = in_dunning
    slowed(monkeypatch, dunning, "dunning_on_payment")

    # when the scheduled retry runs while staff cancel the subscription
    results = race(
        lambda: dunning_run_due(as_of=T0 + timedelta(days=1, minutes=5)),
        lambda: subscription_cancel(subscription=subscription, at=T0 + timedelta(days=1), at_period_end=False),
    )

    # then no deadlock, the subscription ends canceled, the invoice is charged at most once
    no_deadlock(results)
    assert not [r for r in results if isinstance(r, Exception)], results
    subscription.refresh_from_db()
    invoice.refresh_from_db()
    case = DunningCase.objects.get(invoice=invoice)
    assert subscription.status == Subscription.Status.CANCELED
    succeeded = SandboxCharge.objects.filter(status="succeeded").count()
    assert succeeded <= 1
    assert invoice.amount_paid == (invoice.total if succeeded else 0)
    assert (case.status == DunningCase.Status.RECOVERED) == (invoice.status == Invoice.Status.PAID)


def test_a_dunning_retry_and_the_new_card_retry_at_once_charge_once(in_dunning, monkeypatch):
    subscription, invoice = in_dunning
    slowed(monkeypatch, dunning, "dunning_on_payment")

    # when the scheduled retry and the retry of a new default card (dunning_retry_customer) meet
    results = race(
        lambda: dunning_run_due(as_of=T0 + timedelta(days=1, minutes=5)),
        lambda: dunning.dunning_retry_customer(customer_id=subscription.customer_id),
    )

    # then the invoice is paid once, the case recovered, the subscription active again
    no_deadlock(results)
    assert not [r for r in results if isinstance(r, Exception)], results
    invoice.refresh_from_db()
    subscription.refresh_from_db()
    assert SandboxCharge.objects.filter(status="succeeded").count() == 1
    assert invoice.status == Invoice.Status.PAID and invoice.amount_paid == invoice.total
    assert DunningCase.objects.get(invoice=invoice).status == DunningCase.Status.RECOVERED
    assert subscription.status == Subscription.Status.ACTIVE
