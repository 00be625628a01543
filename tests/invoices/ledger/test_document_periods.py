"""Closed periods hold for documents and payments too (issue 19 item 4), with the database as backstop.

Finalization is dated "now" by the billing clock and only a past month can be closed, so an
invoice cannot be finalized into a closed month through the services; a backdated manual
payment or credit note can be asked for, and is refused with a clear error.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment
from billing.services.payments import payment_record_manual
from invoices.ledger import services as ledger_services
from invoices.ledger.errors import PeriodClosed
from invoices.ledger.models import AccountingPeriod, JournalEntry
from invoices.ledger.services import accounting_period_close_approve, accounting_period_close_request
from invoices.services.credit_notes import credit_note_create
from tests.billing.services.test_races import race
from tests.invoices.helpers import issue

TODAY = timezone.now().date()
LAST_MONTH = (TODAY.replace(day=1) - timedelta(days=1)).replace(day=1)
ISSUED = datetime.combine(LAST_MONTH.replace(day=5), datetime.min.time(), tzinfo=UTC).replace(hour=12)
RECEIVED = ISSUED + timedelta(days=10)


def _close_last_month(brand, staff_factory):
    period = accounting_period_close_request(
        brand=brand, livemode=True, month=LAST_MONTH, requested_by=staff_factory(), otp_verified_at=timezone.now()
    )
    return accounting_period_close_approve(period=period, approver=staff_factory(), otp_verified_at=timezone.now())


@pytest.fixture
def invoice(customer_factory, brand, fr_vat):
    return issue(customer_factory(brand=brand), [10000], at=ISSUED, collection_method="send_invoice")


@pytest.mark.django_db
def test_a_backdated_payment_or_credit_note_in_a_closed_month_is_refused(invoice, brand, staff_factory):
    _close_last_month(brand, staff_factory)

    with pytest.raises(PeriodClosed, match="closed") as refused:
        payment_record_manual(invoice=invoice, amount=5000, method="bank_transfer", at=RECEIVED)
    with pytest.raises(PeriodClosed), transaction.atomic():  # it runs in its caller's transaction
        credit_note_create(invoice=invoice, amount=1000, reason="other", at=RECEIVED)

    assert refused.value.http_status == 409 and refused.value.code == "accounting_period_closed"
    assert not Payment.objects.exists()
    # negative control: dated today (an open month), the same payment goes through
    payment_record_manual(invoice=invoice, amount=5000, method="bank_transfer", at=timezone.now())
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_the_console_shows_the_closed_period_as_a_form_error(console, invoice, brand, staff_factory):
    _close_last_month(brand, staff_factory)
    url = reverse("admin:invoices_invoice_record_payment", args=[invoice.pk])

    response = console.post(
        url,
        {"amount": "50.00", "received_on": RECEIVED.date().isoformat(), "method": "cheque", "token": "t1"},
    )

    assert response.status_code == 200
    assert f"The accounting period {LAST_MONTH:%Y-%m} is closed" in response.content.decode()
    assert not Payment.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("postgres_only")
def test_the_database_refuses_documents_dated_in_a_closed_month(invoice, brand, staff_factory):
    _close_last_month(brand, staff_factory)
    common = dict(
        invoice=invoice,
        customer=invoice.customer,
        method="cheque",
        gateway="manual",
        status="succeeded",
        amount=100,
        currency="EUR",
        attempted_at=RECEIVED,
    )

    # a raw insert that skips the service is refused for a payment settled in the closed month
    with pytest.raises(DatabaseError, match="closed"), transaction.atomic():
        Payment.objects.create(settled_at=RECEIVED, **common)
    # negative control: the same payment settled today is accepted
    payment = Payment.objects.create(settled_at=timezone.now(), **common)
    # but moving its date into the closed month is refused (raw SQL: no service involved)
    with pytest.raises(DatabaseError, match="closed"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_payment SET settled_at = %s WHERE id = %s", [RECEIVED, payment.pk])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_close_racing_a_backdated_payment(postgres_only, invoice, brand, staff_factory, monkeypatch):
    # given a close requested for last month, and a payment dated in it that holds the month a while
    period = accounting_period_close_request(
        brand=brand, livemode=True, month=LAST_MONTH, requested_by=staff_factory(), otp_verified_at=timezone.now()
    )
    approver = staff_factory()
    check = ledger_services.accounting_period_check_open

    def slow_check(**kwargs):
        check(**kwargs)
        time.sleep(0.3)

    monkeypatch.setattr("billing.services.payments.accounting_period_check_open", slow_check)

    def pay():
        return payment_record_manual(invoice=invoice, amount=5000, method="bank_transfer", at=RECEIVED)

    def close():
        time.sleep(0.1)
        return accounting_period_close_approve(period=period, approver=approver, otp_verified_at=timezone.now())

    # when both run at once
    paid, closed = race(pay, close)

    # then the payment either committed before the close (its entry dated in the month, validated by
    # the close) or was refused cleanly; never a database error, never an unvalidated entry in the month
    assert isinstance(closed, AccountingPeriod) and closed.state == "closed", closed
    assert isinstance(paid, Payment | PeriodClosed), paid
    in_month = JournalEntry.objects.filter(brand=brand, date__gte=LAST_MONTH, date__lt=TODAY.replace(day=1))
    assert not in_month.filter(number__isnull=True).exists()
    if isinstance(paid, Payment):
        assert in_month.filter(source_type="payment", source_id=paid.pk).get().number is not None
    else:
        assert not Payment.objects.exists()
