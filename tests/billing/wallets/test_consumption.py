"""Prepaid credits meet invoices: finalization (one and bulk), void, expiry, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from billing.wallets.models import CreditGrant, Wallet, WalletTransaction
from billing.wallets.services import (
    credit_grant_void,
    credit_grants_expire,
    credit_grants_settle,
    top_ups_invoice,
    wallet_configure,
)
from config.events.models import DomainEvent
from invoices.models import Invoice
from invoices.rendering.context import invoice_document
from invoices.selectors import invoice_content_hash_matches
from invoices.services.balance import balance_adjust
from invoices.services.finalize import invoices_issue_bulk
from invoices.services.lifecycle import invoice_record_payment, invoice_void
from tests.billing.wallets.helpers import GRANTED_AT, grant
from tests.invoices.helpers import ISSUED_AT, draft_for, issue

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyer(customer_factory, brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR")
    return customer_factory(brand=brand_factory(slug="wallet-brand", invoice_number_format="W-{year}-{seq:06d}"))


def ledger_sum(grant_obj: CreditGrant) -> int:
    return sum(WalletTransaction.objects.filter(grant=grant_obj).values_list("amount", flat=True))


def test_promotional_credits_pay_the_invoice_after_tax_and_the_rest_is_due(buyer):
    # given 50.00 of free credits
    credits = grant(buyer, 5000)
    # when an invoice of 100.00 + 20 % VAT = 120.00 is finalized
    invoice = issue(buyer, [10000])
    # then the credits pay 50.00 of the 120.00 and 70.00 remain due
    assert (invoice.total, invoice.credits_applied, invoice.amount_due) == (12000, 5000, 7000)
    credits.refresh_from_db()
    assert credits.remaining == 0 == ledger_sum(credits)
    assert invoice_content_hash_matches(invoice=invoice)
    rows = dict(
        (key, amount) for key, _label, amount in invoice_document(invoice=invoice, lines=invoice.lines.all()).totals
    )
    assert "prepaid_credits" in rows


def test_credits_larger_than_the_invoice_leave_the_rest_in_the_wallet_and_the_invoice_is_paid(buyer):
    credits = grant(buyer, 20000)
    invoice = issue(buyer, [10000])
    assert (invoice.credits_applied, invoice.amount_due, invoice.status) == (12000, 0, "paid")
    credits.refresh_from_db()
    assert credits.remaining == 8000 == ledger_sum(credits)


def test_credits_come_before_the_customer_balance(buyer):
    grant(buyer, 3000)
    balance_adjust(customer=buyer, amount=5000, currency="EUR", description="goodwill", at=GRANTED_AT)
    invoice = issue(buyer, [10000])  # 120.00
    assert (invoice.credits_applied, invoice.starting_balance_applied, invoice.amount_due) == (3000, 5000, 4000)


def test_priority_then_earliest_expiry_then_oldest(buyer):
    late_expiry = grant(buyer, 1000, priority=10, expires_at=GRANTED_AT + timedelta(days=90))
    early_expiry = grant(buyer, 1000, priority=10, expires_at=GRANTED_AT + timedelta(days=30))
    low_priority = grant(buyer, 5000, priority=1)
    issue(buyer, [5000])  # 60.00: 50 from the priority-1 grant, 10 from the earliest expiry
    for obj in (late_expiry, early_expiry, low_priority):
        obj.refresh_from_db()
    assert (low_priority.remaining, early_expiry.remaining, late_expiry.remaining) == (0, 0, 1000)


def test_expired_or_future_credits_are_not_used(buyer):
    grant(buyer, 1000, expires_at=ISSUED_AT - timedelta(days=1))
    grant(buyer, 1000, effective_at=ISSUED_AT + timedelta(days=1))
    invoice = issue(buyer, [1000])
    assert invoice.credits_applied == 0


def test_usage_only_credits_skip_other_lines(buyer):
    grant(buyer, 5000, applies_to="usage")
    invoice = issue(buyer, [1000])  # a one-off line
    assert invoice.credits_applied == 0


def test_credits_never_take_an_invoice_with_credit_lines_below_zero(buyer):
    grant(buyer, 5000)
    invoice = issue(buyer, [3000, -2000])  # 10.00 + VAT = 12.00 in all
    assert (invoice.total, invoice.credits_applied, invoice.amount_due) == (1200, 1200, 0)


def test_bulk_issue_consumes_credits_like_one_by_one_and_serves_a_customers_invoices_in_order(buyer):
    credits = grant(buyer, 15000)
    ids = invoices_issue_bulk(
        items=[(draft_for(buyer, [10000]), buyer), (draft_for(buyer, [10000]), buyer)], at=ISSUED_AT
    )
    first, second = (Invoice.objects.get(pk=pk) for pk in ids)
    assert (first.credits_applied, first.amount_due) == (12000, 0)
    assert (second.credits_applied, second.amount_due) == (3000, 9000)
    credits.refresh_from_db()
    assert credits.remaining == 0 == ledger_sum(credits)
    assert invoice_content_hash_matches(invoice=second)


def test_voiding_an_invoice_returns_its_credits_once(buyer):
    credits = grant(buyer, 5000)
    invoice = issue(buyer, [10000])
    invoice_void(invoice=invoice, at=ISSUED_AT + timedelta(hours=1))
    credits.refresh_from_db()
    assert credits.remaining == 5000 == ledger_sum(credits)
    assert WalletTransaction.objects.filter(invoice=invoice, kind="reversal").count() == 1


def test_returned_credits_of_an_expired_grant_expire_again(buyer):
    credits = grant(buyer, 5000, expires_at=ISSUED_AT + timedelta(days=1))
    invoice = issue(buyer, [10000])
    credit_grants_expire(at=ISSUED_AT + timedelta(days=2))
    invoice_void(invoice=invoice, at=ISSUED_AT + timedelta(days=3))
    credits.refresh_from_db()
    assert (credits.status, credits.remaining, ledger_sum(credits)) == ("expired", 0, 0)


def test_expiry_loses_what_remains_and_records_an_event(buyer):
    credits = grant(buyer, 5000, expires_at=GRANTED_AT + timedelta(days=5))
    assert credit_grants_expire(at=GRANTED_AT + timedelta(days=4)) == 0
    assert credit_grants_expire(at=GRANTED_AT + timedelta(days=5)) == 1
    credits.refresh_from_db()
    assert (credits.status, credits.remaining, ledger_sum(credits)) == ("expired", 0, 0)
    assert DomainEvent.objects.filter(type="wallet.credit_grant.expired", object_id=str(credits.pk)).exists()
    assert credit_grants_expire(at=GRANTED_AT + timedelta(days=6)) == 0  # once


def test_void_of_a_grant(buyer):
    credits = grant(buyer, 5000)
    credit_grant_void(grant=credits, reason="mistake", at=GRANTED_AT)
    credits.refresh_from_db()
    assert (credits.status, credits.remaining, ledger_sum(credits)) == ("voided", 0, 0)
    invoice = issue(buyer, [1000])
    assert invoice.credits_applied == 0


def test_balance_low_is_recorded_once_per_crossing(buyer):
    grant(buyer, 10000)
    wallet_configure(
        customer=buyer, currency="EUR", low_balance_threshold=5000, top_up_threshold=None, top_up_amount=None
    )
    issue(buyer, [5000])  # 60.00 used: 100 -> 40, crosses 50
    issue(buyer, [1000])  # 12.00 more: 40 -> 28, still under: no second event
    events = DomainEvent.objects.filter(type="customer.wallet.balance_low")
    assert events.count() == 1
    assert events.get().data["balance"] == 4000
    grant(buyer, 10000, at=ISSUED_AT)  # back above: re-armed
    issue(buyer, [8000])  # 96.00: 128 -> 32
    assert events.count() == 2


def test_automatic_top_up_buys_credits_once_per_crossing(buyer, settings, django_capture_on_commit_callbacks):
    settings.TARIF_COLLECT_ON_ISSUE = False
    grant(buyer, 10000)
    wallet_configure(
        customer=buyer, currency="EUR", low_balance_threshold=None, top_up_threshold=5000, top_up_amount=20000
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        issue(buyer, [5000])
        issue(buyer, [1000])
    top_ups = CreditGrant.objects.filter(automatic_top_up=True)
    assert top_ups.count() == 1
    top_up = top_ups.get()
    # the pending grant is the durable hand-off: the sweeper issues its purchase invoice
    assert (top_up.status, top_up.purchase_invoice_id) == ("pending", None)
    assert callbacks  # the fast path was queued too
    assert top_ups_invoice() == 1
    assert top_ups_invoice() == 0  # once
    top_up.refresh_from_db()
    assert top_up.purchase_invoice is not None
    assert (top_up.purchase_invoice.total, top_up.purchase_invoice.credits_applied) == (20000, 0)
    assert not Wallet.objects.get(customer=buyer).top_up_armed


def test_the_database_refuses_a_negative_grant(buyer):
    credits = grant(buyer, 1000)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditGrant.objects.filter(pk=credits.pk).update(remaining=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditGrant.objects.filter(pk=credits.pk).update(remaining=1001)


def test_an_invoice_consumes_a_grant_once(buyer):
    credits = grant(buyer, 5000)
    invoice = issue(buyer, [1000])
    with pytest.raises(IntegrityError), transaction.atomic():
        WalletTransaction.objects.create(
            wallet_id=credits.wallet_id,
            grant=credits,
            kind="consumption",
            amount=-1,
            invoice=invoice,
            created_at=datetime(2026, 3, 11, tzinfo=UTC),
        )


def test_paid_credits_become_available_when_their_purchase_invoice_is_paid(buyer, settings):
    settings.TARIF_COLLECT_ON_ISSUE = False
    bought = grant(buyer, 10000, category="paid")
    invoice = bought.purchase_invoice
    # an out-of-scope invoice of exactly the amount, never paid with credits
    assert (bought.status, bought.remaining, invoice.total, invoice.tax_total, invoice.credits_applied) == (
        "pending",
        0,
        10000,
        0,
        0,
    )
    assert credit_grants_settle() == 0  # not paid yet
    invoice_record_payment(invoice=invoice, amount=10000, at=ISSUED_AT)
    assert credit_grants_settle() == 1
    bought.refresh_from_db()
    assert (bought.status, bought.remaining, ledger_sum(bought)) == ("active", 10000, 10000)
    assert credit_grants_settle() == 0  # once


def test_the_integrity_check_finds_a_grant_off_its_ledger(buyer):
    from config.ops.integrity import check_wallets

    credits = grant(buyer, 5000)
    issue(buyer, [1000])
    assert list(check_wallets()) == []
    # negative control: a remaining that no ledger row explains is reported
    CreditGrant.objects.filter(pk=credits.pk).update(remaining=4000)
    assert [violation.check for violation in check_wallets()] == ["wallets"]


@pytest.mark.parametrize(
    ("grants", "invoices"),
    [
        ([{"amount": 15000}], [[10000], [10000]]),  # the first invoice takes all it can, the second the rest
        ([{"amount": 5000, "applies_to": "usage"}], [[1000]]),  # not eligible: nothing
        ([{"amount": 5000}], [[3000, -2000]]),  # never below zero
        ([{"amount": 800, "priority": 2}, {"amount": 700, "priority": 1}], [[1000], [1000]]),
    ],
)
def test_a_preview_counts_the_credits_finalization_then_takes(buyer, grants, invoices):
    """What a confirmation page shows as paid by credits (CreditsPreview, read-only) is what
    issuing the same invoices in the same order consumes."""
    from billing.wallets.consumption import CreditsPreview
    from invoices.services.drafts import invoice_build

    for fields in grants:
        grant(buyer, fields.pop("amount"), **fields)
    credits = CreditsPreview(customer_id=buyer.pk, currency="EUR")
    ledger_rows = WalletTransaction.objects.count()
    previews = [
        invoice_build(customer=buyer, draft=draft_for(buyer, amounts), credits=credits, at=ISSUED_AT)
        for amounts in invoices
    ]
    assert WalletTransaction.objects.count() == ledger_rows  # the preview wrote nothing
    issued = [issue(buyer, amounts) for amounts in invoices]
    assert [(p.credits_applied, p.amount_due) for p in previews] == [(i.credits_applied, i.amount_due) for i in issued]
    assert sum(i.credits_applied for i in issued) > 0 or grants[0].get("applies_to") == "usage"
