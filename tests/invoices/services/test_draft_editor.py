"""Drafts typed in the console: create, add/change/remove lines, then finalize as any draft."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from billing.limits import AmountOutOfBounds
from billing.models import Price
from config.events.models import DomainEvent
from invoices.models import Invoice, InvoiceLine
from invoices.services.draft_editor import (
    DraftEditError,
    invoice_draft_create,
    invoice_draft_line_add,
    invoice_draft_line_remove,
    invoice_draft_line_update,
    invoice_draft_preview,
    invoice_finalize_preview,
)
from invoices.services.finalize import invoice_finalize
from invoices.services.numbering import number_series_peek
from tests.factories import PriceFactory, TaxRateFactory

pytestmark = pytest.mark.django_db

ISSUED_AT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@contextlib.contextmanager
def refused(*errors, match=None):
    """A refused service call rolls back its own savepoint (the services join the caller's transaction)."""
    with pytest.raises(errors or DraftEditError, match=match) as caught, transaction.atomic():
        yield caught


def breakdown(invoice: Invoice) -> list[tuple[str, str, int, int]]:
    return [(row["category"], row["rate"], row["taxable_amount"], row["tax_amount"]) for row in invoice.tax_breakdown]


def test_a_draft_is_created_empty_in_the_customers_currency_and_language(customer, fr_vat, staff):
    # when finance creates a draft for a French customer
    invoice = invoice_draft_create(customer=customer, memo=" PO 42 ", acting_user=staff)

    # then it is an empty manual draft from the customer's brand, due 30 days after issue
    assert (invoice.status, invoice.currency, invoice.language, invoice.total) == ("draft", "EUR", "fr", 0)
    assert (invoice.brand, invoice.billing_reason, invoice.memo) == (customer.brand, "manual", "PO 42")
    assert (invoice.collection_method, invoice.custom_fields["days_until_due"]) == ("send_invoice", 30)
    assert DomainEvent.objects.filter(type="invoice.created", object_id=str(invoice.pk)).exists()


def test_a_draft_in_another_currency_than_the_customers_is_refused(customer, fr_vat):
    with refused(match="billed in EUR"):
        invoice_draft_create(customer=customer, currency="USD")


@pytest.mark.parametrize("days", [-1, 366, True])
def test_absurd_payment_terms_are_refused(customer, fr_vat, days):
    with refused():
        invoice_draft_create(customer=customer, days_until_due=days)


def test_lines_recompute_totals_and_vat_by_rate(customer, fr_vat):
    # given a draft with a free line of 2 x 150.00 at the automatic VAT (20 %)
    invoice = invoice_draft_create(customer=customer)
    first = invoice_draft_line_add(invoice=invoice, description="Atelier", amount=15000, quantity=2)
    invoice.refresh_from_db()
    assert (first.amount, first.unit_amount, first.tax_rate, first.tax_amount) == (30000, 15000, 20, 6000)
    assert (invoice.subtotal, invoice.tax_total, invoice.total, invoice.amount_due) == (30000, 6000, 36000, 36000)

    # when a line taxed at a chosen reduced rate (5.5 %) is added
    reduced = TaxRateFactory(country="FR", name="TVA réduite", percentage=Decimal("5.5"), is_standard=False)
    invoice_draft_line_add(invoice=invoice, description="Livre", amount=1000, tax_rate=reduced)

    # then the VAT is shown by rate and the totals add up
    invoice.refresh_from_db()
    assert breakdown(invoice) == [("S", "20", 30000, 6000), ("S", "5.5", 1000, 55)]
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (31000, 6055, 37055)


def test_a_price_line_takes_the_price_amount_and_tax_behaviour(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    price = PriceFactory(unit_amount=Decimal(2900), nickname="Mensuel", tax_behavior=Price.TaxBehavior.INCLUSIVE)

    line = invoice_draft_line_add(invoice=invoice, price=price, quantity=3)

    invoice.refresh_from_db()
    assert (line.amount, line.price, line.tax_inclusive) == (8700, price, True)
    assert line.description == f"{price.product.name} — Mensuel"
    # tax included in 87.00 at 20 %: 14.50; the total is the amount itself
    assert (invoice.tax_total, invoice.total, invoice.total_excluding_tax) == (1450, 8700, 7250)


def test_changing_and_removing_lines_follow_the_totals(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    line = invoice_draft_line_add(invoice=invoice, description="Conseil", amount=10000)
    other = invoice_draft_line_add(invoice=invoice, description="Frais", amount=500)

    invoice_draft_line_update(line=line, description="Conseil (2 jours)", amount=10000, quantity=2)
    invoice.refresh_from_db()
    assert invoice.total == (20000 + 500) * 12 // 10

    invoice_draft_line_remove(line=other)
    invoice.refresh_from_db()
    assert list(invoice.lines.values_list("description", flat=True)) == ["Conseil (2 jours)"]
    assert (invoice.subtotal, invoice.total) == (20000, 24000)


def test_an_edited_draft_finalizes_and_reconciles(customer, fr_vat):
    # given a draft edited line by line, with a reduced-rate line and an inclusive price
    invoice = invoice_draft_create(customer=customer)
    reduced = TaxRateFactory(country="FR", name="TVA réduite", percentage=Decimal("5.5"), is_standard=False)
    invoice_draft_line_add(invoice=invoice, description="A", amount=333, quantity=3)
    invoice_draft_line_add(invoice=invoice, description="B", amount=1999, tax_rate=reduced)
    invoice_draft_line_add(
        invoice=invoice, price=PriceFactory(unit_amount=Decimal(1001), tax_behavior="inclusive"), quantity=1
    )
    invoice.refresh_from_db()
    expected_total = invoice.total
    peeked = invoice_finalize_preview(invoice=invoice).number

    # when it is finalized by the one finalize service
    issued = invoice_finalize(invoice=invoice, at=ISSUED_AT)

    # then it reconciles (no InvoiceDoesNotReconcile), keeps its total and takes the peeked number
    assert (issued.status, issued.total, issued.number) == ("open", expected_total, peeked)


def test_a_finalized_invoice_refuses_every_line_edit(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    line = invoice_draft_line_add(invoice=invoice, description="Conseil", amount=10000)
    invoice_finalize(invoice=invoice, at=ISSUED_AT)

    with refused(match="only a draft"):
        invoice_draft_line_add(invoice=invoice, description="Oubli", amount=100)
    with refused(match="only a draft"):
        invoice_draft_line_update(line=line, description="Conseil", amount=1)
    with refused(match="only a draft"):
        invoice_draft_line_remove(line=line)
    assert InvoiceLine.objects.get(pk=line.pk).amount == 10000


@pytest.mark.parametrize("amount", [0, -500, True])
def test_negative_or_zero_amounts_are_refused(customer, fr_vat, amount):
    invoice = invoice_draft_create(customer=customer)
    with refused():
        invoice_draft_line_add(invoice=invoice, description="X", amount=amount)
    assert not invoice.lines.exists()


def test_absurd_amounts_and_quantities_are_refused(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    with refused(AmountOutOfBounds):
        invoice_draft_line_add(invoice=invoice, description="X", amount=10**14)
    with refused(DraftEditError, AmountOutOfBounds):
        invoice_draft_line_add(invoice=invoice, description="X", amount=100, quantity=10**9)
    with refused():
        invoice_draft_line_add(invoice=invoice, description="X", amount=100, quantity=0)


def test_a_line_needs_a_description_and_exactly_one_of_price_and_amount(customer, fr_vat, price):
    invoice = invoice_draft_create(customer=customer)
    with refused(match="Describe"):
        invoice_draft_line_add(invoice=invoice, description="  ", amount=100)
    with refused(match="not both"):
        invoice_draft_line_add(invoice=invoice, description="X", amount=100, price=price)
    with refused(match="not both"):
        invoice_draft_line_add(invoice=invoice, description="X")


def test_a_price_of_the_other_mode_is_refused(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    test_price = PriceFactory(livemode=False)
    with refused() as caught:
        invoice_draft_line_add(invoice=invoice, price=test_price)
    assert caught.value.code == "livemode_mismatch"


def test_a_price_in_another_currency_is_refused(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    with refused(match="USD"):
        invoice_draft_line_add(invoice=invoice, price=PriceFactory(currency="USD"))


def test_archived_and_metered_prices_are_refused(customer, fr_vat, meter):
    invoice = invoice_draft_create(customer=customer)
    with refused(match="archived"):
        invoice_draft_line_add(invoice=invoice, price=PriceFactory(active=False))
    metered = PriceFactory(usage_type=Price.UsageType.METERED, meter=meter)
    with refused(match="metered"):
        invoice_draft_line_add(invoice=invoice, price=metered)


def test_an_inactive_tax_rate_is_refused(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    old = TaxRateFactory(country="FR", percentage=Decimal("19.6"), is_standard=False, active=False)
    with refused(match="no longer active"):
        invoice_draft_line_add(invoice=invoice, description="X", amount=100, tax_rate=old)


def test_the_peek_reserves_nothing_and_finalizing_twice_is_refused(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    invoice_draft_line_add(invoice=invoice, description="Conseil", amount=10000)
    invoice.refresh_from_db()

    # the peek twice gives the same number: nothing was taken
    first = invoice_finalize_preview(invoice=invoice)
    assert first.number == invoice_finalize_preview(invoice=invoice).number
    assert (first.total, first.amount_due, first.line_count) == (12000, 12000, 1)
    assert (first.due_at - first.issue_at).days == 30

    issued = invoice_finalize(invoice=invoice)
    assert issued.number == first.number
    assert number_series_peek(brand=invoice.brand, kind="invoice", at=issued.finalized_at) != first.number
    with refused(match="already"):
        invoice_finalize_preview(invoice=issued)


def test_the_live_preview_gives_the_totals_adding_the_line_would_store(customer, fr_vat):
    invoice = invoice_draft_create(customer=customer)
    line = invoice_draft_line_add(invoice=invoice, description="Conseil", amount=10000)
    invoice.refresh_from_db()

    # previewing a second line writes nothing and predicts the stored totals exactly
    preview = invoice_draft_preview(invoice=invoice, description="Frais", amount=333, quantity=3)
    assert invoice.lines.count() == 1
    invoice_draft_line_add(invoice=invoice, description="Frais", amount=333, quantity=3)
    invoice.refresh_from_db()
    assert (preview.subtotal, preview.tax_total, preview.total) == (invoice.subtotal, invoice.tax_total, invoice.total)

    # previewing a replacement leaves the replaced line out
    replaced = invoice_draft_preview(invoice=invoice, description="Conseil", amount=5000, replacing=line)
    assert replaced.subtotal == 5000 + 999
    with refused(match="Describe"):
        invoice_draft_preview(invoice=invoice, description="", amount=5000)
