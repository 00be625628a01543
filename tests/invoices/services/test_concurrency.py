"""Race tests on real PostgreSQL: each service that locks, run from several threads at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from invoices.errors import CreditNoteError, InsufficientBalance, PaymentError
from invoices.models import BalanceTransaction, CreditNote, Invoice, InvoiceLine
from invoices.selectors import customer_balance
from invoices.services.balance import balance_adjust
from invoices.services.credit_notes import credit_note_create
from invoices.services.finalize import invoice_finalize, invoices_issue_bulk
from invoices.services.lifecycle import invoice_record_payment, invoice_void
from tests.invoices.helpers import ISSUED_AT, create_draft, draft_for, issue, sequence_number

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_threads(jobs: list[Callable[[], object]]) -> tuple[list[object], list[Exception]]:
    """Start every job at the same moment, each on its own connection; collect results and errors."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = []
    errors: list[Exception] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results.append(job())
        except Exception as error:  # collected, then asserted by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@pytest.fixture
def fr_rate(tax_rate_factory):
    return tax_rate_factory(country="FR", percentage=Decimal("20"))


def finalize_all(invoices: list[Invoice]) -> Callable[[], list[str]]:
    def job() -> list[str]:
        numbers = []
        for invoice in invoices:
            with transaction.atomic():
                numbers.append(invoice_finalize(invoice=invoice, at=ISSUED_AT).number)
        return numbers

    return job


def test_eight_threads_finalizing_forty_drafts_get_numbers_one_to_forty(
    postgres_only, customer_factory, brand, fr_rate
):
    # given 40 drafts of four customers, each customer holding 20.00 of credit
    customers = [customer_factory(brand=brand) for _ in range(4)]
    for customer in customers:
        balance_adjust(customer=customer, currency="EUR", amount=2000, description="Credit", at=ISSUED_AT)
    drafts = [create_draft(customers[index % 4], [1000]) for index in range(40)]

    # when eight threads finalize five drafts each, all at once
    results, errors = run_in_threads([finalize_all(drafts[start::8]) for start in range(8)])

    # then the numbers are exactly 1..40: no gap, no duplicate
    assert errors == []
    numbers = sorted(sequence_number(number) for numbers in results for number in numbers)
    assert numbers == list(range(1, 41))
    # and each customer's credit was spent once: 20.00 over its 12.00 invoices, never below zero
    for customer in customers:
        applied = Invoice.objects.filter(customer=customer).aggregate(total=Sum("starting_balance_applied"))["total"]
        assert applied == 2000
        assert customer_balance(customer_id=customer.pk, currency="EUR") == 0


def test_bulk_chunks_and_single_finalizations_share_one_gapless_series(postgres_only, customer_factory, brand, fr_rate):
    # given three chunks of 20 customers and two threads of 5 drafts
    chunks = [[customer_factory(brand=brand) for _ in range(20)] for _ in range(3)]
    singles = [create_draft(customer_factory(brand=brand)) for _ in range(10)]

    def bulk(customers):
        def job():
            with transaction.atomic():
                return invoices_issue_bulk(items=[(draft_for(c), c) for c in customers], at=ISSUED_AT)

        return job

    # when they all run at once
    _, errors = run_in_threads(
        [bulk(chunk) for chunk in chunks] + [finalize_all(singles[:5]), finalize_all(singles[5:])]
    )

    # then the brand's 70 invoices are numbered 1..70
    assert errors == []
    numbers = sorted(sequence_number(number) for number in Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, 71))


def test_a_brands_first_finalization_creates_its_ledger_rows_before_the_number_lock(
    postgres_only, customer_factory, brand, fr_rate
):
    # given a brand with no chart of accounts yet, and a bulk chunk that loads it and the month's
    # accounting periods (uncommitted, as its postings do before it takes the series lock)
    from invoices.ledger.locks import accounting_periods_share
    from invoices.ledger.models import AccountMapping, LedgerSettings
    from invoices.ledger.services import chart_load
    from invoices.models import NumberSequence
    from invoices.services.numbering import number_series_lock

    draft = create_draft(customer_factory(brand=brand), [1000])
    assert not AccountMapping.objects.filter(brand=brand).exists()
    loaded = threading.Event()

    def chunk():  # a bulk chunk: its postings (the chart's first load) come before the series lock
        with transaction.atomic():
            month = ISSUED_AT.date().replace(day=1)
            for livemode in (True, False):
                accounting_periods_share(brand_id=brand.pk, livemode=livemode, months=[month])
            chart_load(brand=brand)
            loaded.set()
            time.sleep(0.5)  # the single finalization reaches its own chart load meanwhile
            number_series_lock(brand=brand, kind=NumberSequence.Kind.INVOICE, at=ISSUED_AT)

    def single():
        loaded.wait(10)
        with transaction.atomic():
            return invoice_finalize(invoice=draft, at=ISSUED_AT).number

    # when a single finalization runs meanwhile
    results, errors = run_in_threads([chunk, single])

    # then it waits for those rows before taking the series lock: no deadlock (the control takes
    # ledger_brand_ready out of number_series_lock: the finalization holds the lock while it waits)
    assert errors == []
    assert sequence_number(next(r for r in results if r)) == 1
    # and no posting wrote the brand's ledger settings (only finance's change does)
    assert not LedgerSettings.objects.filter(brand=brand).exists()


def test_concurrent_credit_notes_never_credit_more_than_the_invoice(postgres_only, customer, fr_rate):
    # given an invoice of 12.00
    invoice = issue(customer, [1000])

    # when four threads each credit 5.00 at once
    def credit():
        with transaction.atomic():
            return credit_note_create(invoice=invoice, amount=500, credit_to_balance=500, reason="other", at=ISSUED_AT)

    results, errors = run_in_threads([credit] * 4)

    # then two succeed (10.00), the others are refused, and the credit notes are numbered 1, 2
    assert len(results) == 2
    assert len(errors) == 2 and all(isinstance(error, CreditNoteError) for error in errors)
    assert sorted(sequence_number(n) for n in CreditNote.objects.values_list("number", flat=True)) == [1, 2]
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 1000


def test_concurrent_payments_never_pay_more_than_is_due(postgres_only, customer, fr_rate):
    # given an invoice of 12.00
    invoice = issue(customer, [1000])

    # when three threads each record 5.00 at once
    def pay():
        with transaction.atomic():
            return invoice_record_payment(invoice=invoice, amount=500, at=ISSUED_AT)

    results, errors = run_in_threads([pay] * 3)

    # then two are recorded and the third would overpay
    assert (len(results), [type(error) for error in errors]) == (2, [PaymentError])
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_remaining, invoice.status) == (1000, 200, "open")


def test_concurrent_debits_never_make_the_balance_negative(postgres_only, customer):
    # given 10.00 of credit
    balance_adjust(customer=customer, currency="EUR", amount=1000, description="Credit", at=ISSUED_AT)

    # when four threads debit 3.00 at once
    def debit():
        with transaction.atomic():
            return balance_adjust(customer=customer, currency="EUR", amount=-300, description="Debit", at=ISSUED_AT)

    results, errors = run_in_threads([debit] * 4)

    # then three pass and 1.00 is left
    assert (len(results), [type(error) for error in errors]) == (3, [InsufficientBalance])
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 100
    assert BalanceTransaction.objects.filter(customer=customer).count() == 4


def test_a_line_added_while_the_invoice_is_being_finalized_is_refused(postgres_only, customer, fr_rate):
    # given a draft being finalized in a transaction that has not committed yet
    draft = create_draft(customer, [1000])
    finalized = threading.Event()
    release = threading.Event()
    outcome: dict[str, object] = {}

    def finalize():
        try:
            with transaction.atomic():
                invoice_finalize(invoice=draft, at=ISSUED_AT)
                finalized.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    def add_line():
        try:
            finalized.wait(timeout=10)
            with transaction.atomic():
                InvoiceLine.objects.create(invoice_id=draft.pk, kind="one_off", description="Late", amount=100)
            outcome["added"] = True
        except DatabaseError as error:
            outcome["error"] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=finalize), threading.Thread(target=add_line)]
    for thread in threads:
        thread.start()

    # when the line insert waits for the finalization, which then commits
    finalized.wait(timeout=10)
    time.sleep(0.3)
    assert "added" not in outcome and "error" not in outcome  # still waiting on the invoice row
    release.set()
    for thread in threads:
        thread.join(timeout=20)

    # then the database refuses the line: the issued invoice keeps its single line
    assert "lines of finalized invoice" in str(outcome.get("error"))
    assert InvoiceLine.objects.filter(invoice_id=draft.pk).count() == 1


def test_a_void_racing_a_payment_leaves_one_consistent_outcome(postgres_only, customer, fr_rate):
    # given an open invoice of 12.00 and 5.00 of credit used on it
    balance_adjust(customer=customer, currency="EUR", amount=500, description="Credit", at=ISSUED_AT)
    invoice = issue(customer, [1000])

    # when one thread voids it while another records the full payment
    def void():
        with transaction.atomic():
            return invoice_void(invoice=invoice, at=ISSUED_AT)

    def pay():
        with transaction.atomic():
            return invoice_record_payment(invoice=invoice, amount=700, at=ISSUED_AT)

    results, errors = run_in_threads([void, pay])

    # then exactly one wins, and the credit is back only if the invoice is void
    assert (len(results), len(errors)) == (1, 1)
    invoice.refresh_from_db()
    assert invoice.status in ("void", "paid")
    expected_balance = 500 if invoice.status == "void" else 0
    assert customer_balance(customer_id=customer.pk, currency="EUR") == expected_balance
    assert invoice.amount_paid == (0 if invoice.status == "void" else 700)
