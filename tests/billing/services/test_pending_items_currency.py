"""A customer-level pending item goes on the customer's next invoice in its currency,
in the billing run as in the upcoming-invoice preview (issue 14)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from billing.models import InvoiceItem
from billing.services.billing_run import billing_run_start
from billing.services.invoice_items import invoice_item_create
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.upcoming import upcoming_invoice
from customers.models import Customer
from invoices.models import Invoice
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

START = utc(2026, 3, 1)
BOUNDARY = utc(2026, 4, 1)


def one_offs(invoice: Invoice) -> list[tuple[str, int]]:
    return [(line.description, line.amount) for line in invoice.lines.filter(kind="one_off").order_by("position")]


def renewal_of(subscription) -> Invoice:
    return Invoice.objects.get(subscription=subscription, billing_reason="subscription_cycle")


@pytest.mark.parametrize("first", ["EUR", "USD"])
def test_a_customer_level_item_goes_on_the_subscription_in_its_currency(first, make_customer, make_price):
    # Given a customer with a EUR and a USD subscription (either created first, so either
    # comes first in the run's chunk) and a pending customer-level item in each currency.
    # Customers are held to one currency since issue 13; rows from before (or a currency
    # switched in the database) still mix them, which the raw update stands for.
    customer = make_customer(currency=first)
    second = "USD" if first == "EUR" else "EUR"
    subscriptions = {}
    for currency in (first, second):
        Customer.objects.filter(pk=customer.pk).update(currency=currency)
        customer.refresh_from_db()
        subscriptions[currency] = subscription_create(
            customer=customer, items=[ItemSpec(make_price(2900, currency=currency))], at=START
        )
        invoice_item_create(customer=customer, amount=700, description=f"Setup {currency}", at=START + timedelta(1))

    # When the preview is taken at the boundary, then the run bills it
    previews = {
        currency: upcoming_invoice(subscription=subscription, at=BOUNDARY)
        for currency, subscription in subscriptions.items()
    }
    with time_machine.travel(BOUNDARY, tick=False):
        billing_run_start(as_of=BOUNDARY)

    # Then each item is on the invoice in its currency, in the preview and in the run
    for currency, subscription in subscriptions.items():
        shown = [(line.draft.description, line.draft.amount) for line in previews[currency].lines]
        assert (f"Setup {currency}", 700) in shown
        assert one_offs(renewal_of(subscription)) == [(f"Setup {currency}", 700)]
    assert not InvoiceItem.objects.filter(customer=customer, invoice__isnull=True).exists()


def test_an_item_in_a_currency_no_subscription_bills_stays_pending(make_customer, make_price):
    # Given a customer billed in EUR only, with a pending item in USD from before its
    # currency changed (allowed while it had no subscription)
    customer = make_customer(currency="USD")
    item = invoice_item_create(customer=customer, amount=700, description="Setup", at=START)
    Customer.objects.filter(pk=customer.pk).update(currency="EUR")
    customer.refresh_from_db()
    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=START)

    # When the preview is taken and the run bills the boundary
    preview = upcoming_invoice(subscription=subscription, at=BOUNDARY)
    with time_machine.travel(BOUNDARY, tick=False):
        billing_run_start(as_of=BOUNDARY)

    # Then neither shows it: it waits for a later invoice in USD
    assert "Setup" not in [line.draft.description for line in preview.lines]
    assert one_offs(renewal_of(subscription)) == []
    item.refresh_from_db()
    assert item.invoice_id is None
