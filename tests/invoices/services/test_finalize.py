from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.events.models import DomainEvent
from invoices.calculations import DiscountInput
from invoices.errors import InvalidInvoiceTransition, InvoiceDoesNotReconcile
from invoices.models import Invoice, InvoiceLine
from invoices.selectors import invoice_content_hash_matches
from invoices.services.balance import balance_adjust
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftDiscount, DraftInvoice, DraftLine
from tests.factories import BrandFactory, CustomerFactory, TaxRateFactory
from tests.invoices.helpers import ISSUED_AT, create_draft, issue

pytestmark = pytest.mark.django_db


def mention_texts(invoice: Invoice) -> dict[str, str]:
    return {mention["key"]: mention["text"] for mention in invoice.issued_snapshot["mentions"]}


def test_finalizing_opens_the_invoice_with_number_dates_and_amounts(customer, fr_vat):
    # given a draft of 10.00 + 2.50 excluding VAT, charged automatically
    draft = create_draft(customer, [1000, 250])
    assert (draft.status, draft.number, draft.finalized_at) == ("draft", None, None)

    # when it is finalized
    invoice = invoice_finalize(invoice=draft, at=ISSUED_AT)

    # then it is open, numbered, due at once, for 12.50 + 20 % = 15.00
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == ("open", "F-2026-000001")
    assert (invoice.finalized_at, invoice.due_at, invoice.paid_at) == (ISSUED_AT, ISSUED_AT, None)
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (1250, 250, 1500)
    assert (invoice.amount_due, invoice.amount_remaining, invoice.starting_balance_applied) == (1500, 1500, 0)
    assert invoice.tax_breakdown == [
        {"category": "S", "rate": "20", "inclusive": False, "taxable_amount": 1250, "tax_amount": 250}
    ]


def test_send_invoice_is_due_after_its_terms_or_thirty_days(customer, fr_vat):
    # given two invoices sent to be paid by transfer, one with 14 days of terms
    with_terms = issue(customer, collection_method="send_invoice", days_until_due=14)
    default_terms = issue(customer, collection_method="send_invoice")

    # then they are due 14 and 30 days after issue, and the terms are printed
    assert with_terms.due_at == ISSUED_AT + timedelta(days=14)
    assert default_terms.due_at == ISSUED_AT + timedelta(days=30)
    assert mention_texts(with_terms)["payment_terms"] == "Paiement à 14 jours, date d'échéance : 24 mars 2026"


def test_the_snapshot_freezes_seller_buyer_and_the_mentions_french_law_requires(brand, customer_factory, fr_vat):
    # given a brand opting for VAT on debits and a business customer with a SIREN and a delivery address
    brand.vat_on_debits = True
    brand.late_payment_rate_fr = "3 fois le taux d'intérêt légal"  # the French text (per-language brand texts)
    brand.save()
    customer = customer_factory(
        brand=brand, siren="732829320", delivery_address="Entrepôt 4, 12 rue du Port, 31000 Toulouse"
    )

    # when an invoice is issued
    invoice = issue(customer)

    # then seller and buyer legal details are frozen in it
    seller, buyer = invoice.issued_snapshot["seller"], invoice.issued_snapshot["buyer"]
    assert (
        seller.items()
        >= {
            "legal_name": "Atelier Nuage SAS",
            "legal_form": "SAS",
            "siren": "552100554",
            "siret": "55210055400013",
            "vat_number": "FR03552100554",
            "share_capital": "50 000 €",
            "rcs": "RCS Paris 552 100 554",
            "address_line1": "42 rue de la Paix",
            "postal_code": "75002",
            "city": "Paris",
            "country": "FR",
        }.items()
    )
    assert (
        buyer.items()
        >= {
            "legal_name": customer.legal_name,
            "siren": "732829320",
            "country": "FR",
            "city": "Toulouse",
            "delivery_address": "Entrepôt 4, 12 rue du Port, 31000 Toulouse",
        }.items()
    )
    # and the mentions, in French
    mentions = mention_texts(invoice)
    assert mentions["late_payment"].startswith("Pénalités de retard : 3 fois le taux d'intérêt légal")
    assert "indemnité forfaitaire pour frais de recouvrement de 40 €" in mentions["recovery_indemnity"]
    assert mentions["early_payment"] == "Pas d'escompte pour paiement anticipé"
    assert mentions["operation_category"] == "Catégorie de l'opération : Prestation de services"
    assert mentions["vat_on_debits"] == "Option pour le paiement de la taxe d'après les débits"
    assert "date d'échéance : 10 mars 2026" in mentions["payment_terms"]
    assert invoice.issued_snapshot["issue_date"] == "2026-03-10"


def test_an_english_invoice_carries_the_mentions_in_english(customer_factory, brand, fr_vat):
    # given a customer reading English
    customer = customer_factory(brand=brand, preferred_language="en")

    # when invoiced
    invoice = issue(customer)

    # then the mentions are in English
    mentions = mention_texts(invoice)
    assert mentions["early_payment"] == "No discount for early payment"
    assert "€40" in mentions["recovery_indemnity"]
    assert "vat_on_debits" not in mentions


def test_later_edits_of_the_customer_and_brand_leave_the_issued_invoice_unchanged(customer, brand, fr_vat):
    # given an issued invoice
    invoice = issue(customer)

    # when the customer moves and the brand renames itself
    customer.address_line1 = "9 avenue Neuve"
    customer.save()
    brand.legal_name = "Nuage Holding SA"
    brand.save()

    # then the invoice shows the details of the day it was issued
    invoice.refresh_from_db()
    assert invoice.issued_snapshot["buyer"]["address_line1"] == "1 place du Capitole"
    assert invoice.issued_snapshot["seller"]["legal_name"] == "Atelier Nuage SAS"
    assert invoice_content_hash_matches(invoice=invoice)


def test_the_content_hash_covers_number_amounts_lines_and_snapshot(customer, fr_vat):
    # given an issued invoice, read back from the database
    invoice = issue(customer, [1000, 333])
    invoice.refresh_from_db()
    assert len(invoice.content_hash) == 64
    assert invoice_content_hash_matches(invoice=invoice)

    # when any covered value differs (in memory only)
    invoice.issued_snapshot["buyer"]["legal_name"] = "Someone else"

    # then the hash no longer matches
    assert not invoice_content_hash_matches(invoice=invoice)


def test_finalizing_twice_is_refused(customer, fr_vat):
    # given an issued invoice
    invoice = issue(customer)

    # when it is finalized again
    with pytest.raises(InvalidInvoiceTransition, match="from 'open' to 'open'"), transaction.atomic():
        invoice_finalize(invoice=invoice, at=ISSUED_AT)

    # then it keeps its number
    invoice.refresh_from_db()
    assert invoice.number == "F-2026-000001"


def test_a_draft_whose_lines_do_not_add_up_is_not_issued(customer, fr_vat):
    # given a draft whose line was edited behind the totals' back
    draft = create_draft(customer, [1000])
    line = draft.lines.get()
    line.amount = 1500
    line.save()

    # when it is finalized
    with pytest.raises(InvoiceDoesNotReconcile, match="subtotal is 1000 but its lines give 1500"), transaction.atomic():
        invoice_finalize(invoice=draft, at=ISSUED_AT)

    # then it stays a draft without a number
    draft.refresh_from_db()
    assert (draft.status, draft.number) == ("draft", None)


def test_a_line_with_a_wrong_tax_share_is_not_issued(customer, fr_vat):
    # given a draft line whose tax is one cent off
    draft = create_draft(customer, [1000])
    InvoiceLine.objects.filter(invoice=draft).update(tax_amount=201)

    # when it is finalized
    with pytest.raises(InvoiceDoesNotReconcile, match="carries 201 of tax but its tax group gives 200"):
        with transaction.atomic():
            invoice_finalize(invoice=draft, at=ISSUED_AT)


def test_finalizing_records_an_event(customer, fr_vat, staff):
    # given a draft
    draft = create_draft(customer)

    # when a staff member finalizes it
    invoice = invoice_finalize(invoice=draft, at=ISSUED_AT, acting_user=staff)

    # then an invoice.finalized event says so
    event = DomainEvent.objects.get(type="invoice.finalized", object_id=str(invoice.pk))
    assert (event.customer_id, event.acting_user_id, event.occurred_at) == (customer.pk, staff.pk, ISSUED_AT)
    assert (
        event.data.items() >= {"number": "F-2026-000001", "total": 1200, "amount_due": 1200, "status": "open"}.items()
    )


def test_an_invoice_with_nothing_to_pay_is_paid_on_issue(customer, fr_vat):
    # given a draft of zero
    invoice = issue(customer, [0])

    # then it is paid at once, and both events are recorded
    assert (invoice.status, invoice.amount_due, invoice.paid_at) == ("paid", 0, ISSUED_AT)
    assert list(
        DomainEvent.objects.filter(object_id=str(invoice.pk)).order_by("pk").values_list("type", flat=True)
    ) == ["invoice.finalized", "invoice.paid"]


def test_finalization_needs_an_aware_date(customer, fr_vat):
    draft = create_draft(customer)
    with pytest.raises(Exception, match="aware datetime"), transaction.atomic():
        invoice_finalize(invoice=draft, at=datetime(2026, 1, 1))  # noqa: DTZ001


# -- property: totals through create + finalize -------------------------------------------

amounts = st.integers(min_value=-50_000, max_value=500_000)
lines_strategy = st.lists(st.tuples(amounts, st.booleans()), min_size=1, max_size=6)
discounts_strategy = st.lists(
    st.one_of(
        st.builds(DiscountInput, percent_off=st.decimals(min_value=1, max_value=100, places=2).map(Decimal)),
        st.builds(DiscountInput, amount_off=st.integers(min_value=0, max_value=100_000)),
    ),
    max_size=2,
)
buyers = st.sampled_from(["FR", "DE-B2C", "DE-B2B", "CA"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines_strategy, discounts=discounts_strategy, buyer=buyers, credit=st.integers(0, 300_000))
def test_issued_totals_are_lines_minus_discounts_plus_tax_exactly(lines, discounts, buyer, credit):
    # given a customer (with some credit) and a draft with mixed inclusive / exclusive lines and discounts
    TaxRateFactory(country="FR", percentage=Decimal("20"))
    TaxRateFactory(country="DE", percentage=Decimal("19"))
    country = buyer[:2]
    customer = CustomerFactory(
        brand=BrandFactory(slug="property-brand"),
        country=country,
        is_business=buyer == "DE-B2B",
        tax_id="DE136695976" if buyer == "DE-B2B" else "",
    )
    if credit:
        balance_adjust(customer=customer, currency="EUR", amount=credit, description="goodwill", at=ISSUED_AT)
    draft = DraftInvoice(
        customer_id=customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=tuple(
            DraftLine(kind="one_off", description=f"L{index}", amount=amount, tax_inclusive=inclusive)
            for index, (amount, inclusive) in enumerate(lines)
        ),
        discounts=tuple(DraftDiscount(discount=discount, label="d") for discount in discounts),
    )

    # when it is created then finalized
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=customer), at=ISSUED_AT)
    invoice.refresh_from_db()
    stored = list(invoice.lines.all())

    # then total = sum of lines - discounts + exclusive tax, exactly
    exclusive_tax = sum(group["tax_amount"] for group in invoice.tax_breakdown if not group["inclusive"])
    assert invoice.subtotal == sum(amount for amount, _ in lines) == sum(line.amount for line in stored)
    assert invoice.total == invoice.subtotal - invoice.discount_total + exclusive_tax
    assert invoice.total_excluding_tax == invoice.total - invoice.tax_total
    # and the lines' shares add up to the invoice's
    assert sum(line.discount_amount for line in stored) == invoice.discount_total
    assert sum(line.tax_amount for line in stored) == invoice.tax_total
    assert sum(group["tax_amount"] for group in invoice.tax_breakdown) == invoice.tax_total
    assert sum(group["taxable_amount"] for group in invoice.tax_breakdown) == invoice.total_excluding_tax
    # and customer credit covers what it can, the rest is due
    assert invoice.amount_due == invoice.total - invoice.starting_balance_applied >= 0
    assert invoice.starting_balance_applied == (min(credit, invoice.total) if invoice.total > 0 else invoice.total)
    assert invoice_content_hash_matches(invoice=invoice)
