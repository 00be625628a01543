"""Race tests on real PostgreSQL: credits are consumed exactly once under concurrent finalizations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from billing.wallets.models import CreditGrant, WalletTransaction
from invoices.models import Invoice
from invoices.services.finalize import invoice_finalize, invoices_issue_bulk
from invoices.services.lifecycle import invoice_void
from tests.billing.wallets.helpers import grant
from tests.invoices.helpers import ISSUED_AT, create_draft, draft_for
from tests.invoices.services.test_concurrency import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def buyer(customer_factory, brand_factory, tax_rate_factory):
    tax_rate_factory(country="FR")
    return customer_factory(brand=brand_factory(slug="race-wallets", invoice_number_format="RW-{year}-{seq:06d}"))


def test_concurrent_finalizations_and_a_billing_chunk_share_one_grant_exactly(postgres_only, buyer):
    # given 100.00 of credits and six drafts of 12.00 each, plus a bulk chunk of two more
    credits = grant(buyer, 10000)
    drafts = [create_draft(buyer, [1000]) for _ in range(6)]

    def finalize(invoice: Invoice):
        def job() -> int:
            with transaction.atomic():
                return invoice_finalize(invoice=invoice, at=ISSUED_AT).credits_applied

        return job

    def bulk() -> int:
        with transaction.atomic():
            ids = invoices_issue_bulk(items=[(draft_for(buyer, [1000]), buyer) for _ in range(2)], at=ISSUED_AT)
        return sum(Invoice.objects.filter(pk__in=ids).values_list("credits_applied", flat=True))

    # when they all run at once
    results, errors = run_in_threads([finalize(draft) for draft in drafts] + [bulk])

    # then the eight invoices (96.00) took 96.00 of the 100.00, once each, and the ledger agrees
    assert errors == []
    assert sum(results) == 9600
    credits.refresh_from_db()
    assert credits.remaining == 400
    assert sum(WalletTransaction.objects.filter(grant=credits).values_list("amount", flat=True)) == 400


def test_voiding_while_finalizing_keeps_the_grant_exact(postgres_only, buyer):
    credits = grant(buyer, 1000)
    first = invoice_finalize(invoice=create_draft(buyer, [1000]), at=ISSUED_AT)  # takes 10.00, 2.00 stay due
    second = create_draft(buyer, [1000])

    def void() -> None:
        with transaction.atomic():
            invoice_void(invoice=first, at=ISSUED_AT + timedelta(minutes=1))

    def finalize() -> None:
        with transaction.atomic():
            invoice_finalize(invoice=second, at=ISSUED_AT + timedelta(minutes=1))

    _results, errors = run_in_threads([void, finalize])

    assert errors == []
    credits.refresh_from_db()
    second.refresh_from_db()
    # whichever came first, the grant holds what the ledger says, and never less than zero
    ledger = sum(WalletTransaction.objects.filter(grant=credits).values_list("amount", flat=True))
    assert credits.remaining == ledger == 1000 - second.credits_applied
    assert CreditGrant.objects.get(pk=credits.pk).remaining >= 0
