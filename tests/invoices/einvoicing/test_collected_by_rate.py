"""Issue 18: "212 Encaissée" carries the amount collected per VAT rate (BR-FR-CDV-14, MDG-43
"MEN" blocks): pro rata of the invoice's VAT breakdown, largest remainder, parts adding up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoices.einvoicing.models import Transmission
from invoices.einvoicing.services import collected_statuses_send, collected_vat_amounts, transmissions_submit_due
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine
from tests.factories import PriceFactory, ProductFactory
from tests.invoices.helpers import ISSUED_AT
from tests.tax_codes import seeded_tax_codes


def group(rate: str, taxable: int, tax: int, *, category: str = "S", inclusive: bool = False) -> dict:
    return {"category": category, "rate": rate, "taxable_amount": taxable, "tax_amount": tax, "inclusive": inclusive}


def test_a_partial_payment_is_split_pro_rata_by_largest_remainder():
    # given 120.00 at 20 % and 105.50 at 5.5 % (225.50 in all)
    breakdown = [group("20.00", 10000, 2000), group("5.5", 10000, 550)]
    # when 100.00 is collected: exact shares 53.21508... and 46.78492...
    parts = collected_vat_amounts(amount=10000, breakdown=breakdown)
    # then the larger remainder takes the leftover cent, and the rates are written as on the invoice
    assert parts == [{"rate": "20", "amount": 5322}, {"rate": "5.5", "amount": 4678}]
    # and the rest of the invoice (125.50: 66.7849... and 58.7150...) goes the other way
    assert collected_vat_amounts(amount=12550, breakdown=breakdown) == [
        {"rate": "20", "amount": 6678},
        {"rate": "5.5", "amount": 5872},
    ]


def test_groups_of_one_rate_make_one_part_and_inclusive_groups_weigh_their_taxable_amount():
    breakdown = [
        group("20", 1000, 200),
        group("20", 1200, 200, inclusive=True),  # 12.00 including 2.00 of VAT
        group("0", 600, 0, category="E"),
        group("0", 400, 0, category="AE"),
    ]
    assert collected_vat_amounts(amount=3400, breakdown=breakdown) == [
        {"rate": "20", "amount": 2400},
        {"rate": "0", "amount": 1000},
    ]


def test_a_document_without_breakdown_reports_its_amount_at_no_rate():
    assert collected_vat_amounts(amount=500, breakdown=[]) == [{"rate": "0", "amount": 500}]


@given(
    amount=st.integers(min_value=1, max_value=10**9),
    groups=st.lists(
        st.tuples(st.sampled_from(["20", "10", "5.5", "2.1", "0"]), st.integers(0, 10**7), st.integers(0, 10**6)),
        min_size=1,
        max_size=6,
    ),
)
def test_the_parts_always_add_up_to_the_amount_collected(amount, groups):
    parts = collected_vat_amounts(amount=amount, breakdown=[group(rate, taxable, tax) for rate, taxable, tax in groups])
    assert sum(part["amount"] for part in parts) == amount
    assert len({part["rate"] for part in parts}) == len(parts)
    assert all(part["amount"] >= 0 for part in parts)


@pytest.mark.postgres
@pytest.mark.django_db
def test_payments_on_a_mixed_rate_invoice_send_212_split_per_rate(sim, account, b2b_customer, fr_vat):
    from billing.services.payments import payment_record_manual

    # given a transmitted invoice for services at 20 % (120.00) and at 5.5 % (105.50)
    codes = seeded_tax_codes()
    reduced = PriceFactory(product=ProductFactory(tax_code=codes["reduced"], supply_kind="services"))
    draft = DraftInvoice(
        customer_id=b2b_customer.pk,
        currency="EUR",
        billing_reason="manual",
        lines=(
            DraftLine(kind="one_off", description="Subscription", amount=10000),
            DraftLine(kind="one_off", description="Books club", amount=10000, price_id=reduced.pk),
        ),
    )
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=b2b_customer), at=ISSUED_AT)
    assert invoice.total == 22550
    transmissions_submit_due()
    transmission = Transmission.objects.get(invoice=invoice)

    # when the customer pays 100.00, then the rest
    payment_record_manual(invoice=invoice, amount=10000, method="bank_transfer", at=datetime(2026, 3, 12, tzinfo=UTC))
    payment_record_manual(invoice=invoice, amount=12550, method="bank_transfer", at=datetime(2026, 3, 20, tzinfo=UTC))
    assert collected_statuses_send() == 2

    # then each 212 carries its amount split per rate, and the parts add up over the invoice
    stored = transmission.statuses.filter(code="212", origin="issuer").order_by("occurred_at")
    assert [status.vat_amounts for status in stored] == [
        [{"rate": "20", "amount": 5322}, {"rate": "5.5", "amount": 4678}],
        [{"rate": "20", "amount": 6678}, {"rate": "5.5", "amount": 5872}],
    ]
    sent = sim.state()["issuer_statuses"]
    assert [(status["amount"], status["collectedByVatRate"]) for status in sent] == [
        (
            10000,
            [
                {"typeCode": "MEN", "vatRate": "20", "amount": 5322},
                {"typeCode": "MEN", "vatRate": "5.5", "amount": 4678},
            ],
        ),
        (
            12550,
            [
                {"typeCode": "MEN", "vatRate": "20", "amount": 6678},
                {"typeCode": "MEN", "vatRate": "5.5", "amount": 5872},
            ],
        ),
    ]
