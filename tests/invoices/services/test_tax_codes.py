"""Issue 16 item 11: tax codes in the VAT decision, the invoice, its credit note and its Factur-X."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from facturx import xml_check_xsd
from lxml import etree

from invoices.models import Invoice
from invoices.rendering.facturx import credit_note_cii_xml, invoice_cii_xml
from invoices.services.credit_notes import credit_note_create
from invoices.services.drafts import invoice_build, invoice_create
from invoices.services.finalize import invoice_finalize, invoices_issue_bulk
from invoices.services.tax import TaxCategoriesIncompatible
from invoices.types import DraftInvoice, DraftLine
from invoices.vat import TaxCodeSpec, decide_vat
from tests.factories import PriceFactory, ProductFactory
from tests.invoices.helpers import ISSUED_AT
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

NS = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}
REDUCED = TaxCodeSpec(code="reduced", category="reduced", rates={"FR": Decimal("5.5"), "DE": Decimal(7)})
EXEMPT = TaxCodeSpec(code="x", category="exempt", exemption_reason_code="VATEX-EU-132-1I", exemption_reason="r")


def standard(country: str) -> Decimal:
    return {"FR": Decimal(20), "DE": Decimal(19), "DK": Decimal(25)}[country]


@pytest.mark.parametrize(
    ("buyer", "vat_number", "code", "category", "rate"),
    [
        ("FR", None, REDUCED, "S", Decimal("5.5")),  # domestic: seller's reduced rate
        ("DE", None, REDUCED, "S", Decimal(7)),  # OSS: buyer's reduced rate
        ("DK", None, REDUCED, "S", Decimal(25)),  # no DK reduced rate: DK standard
        ("DE", "DE136695976", REDUCED, "AE", Decimal(0)),  # reverse charge over reduced
        ("DE", "DE136695976", EXEMPT, "E", Decimal(0)),  # exempt stays exempt
        ("US", None, EXEMPT, "O", Decimal(0)),  # export over exempt
        ("FR", None, None, "S", Decimal(20)),  # no code: standard, as before
    ],
)
def test_decide_vat_precedence(buyer, vat_number, code, category, rate):
    decision = decide_vat(
        seller_country="FR", buyer_country=buyer, buyer_vat_number=vat_number, standard_rate=standard, tax_code=code
    )

    assert (decision.category, decision.rate) == (category, rate)
    assert decision.exemption_reason_code == ("VATEX-EU-132-1I" if category == "E" else "")


def _draft(customer, lines):
    draft_lines = []
    for index, (code, amount) in enumerate(lines):
        price = PriceFactory(product=ProductFactory(tax_code=code))
        draft_lines.append(DraftLine(kind="one_off", description=f"Line {index + 1}", amount=amount, price_id=price.pk))
    return DraftInvoice(customer_id=customer.pk, currency="EUR", billing_reason="manual", lines=tuple(draft_lines))


def test_out_of_scope_lines_cannot_share_an_invoice_with_taxed_lines(customer_factory, brand, fr_vat):
    codes = seeded_tax_codes()
    customer = customer_factory(brand=brand)

    with pytest.raises(TaxCategoriesIncompatible) as refused:
        invoice_build(customer=customer, draft=_draft(customer, [(codes["out-of-scope"], 1000), (None, 1000)]))

    assert refused.value.code == "tax_categories_incompatible" and refused.value.http_status == 409


def test_mixed_rates_and_exempt_invoice_and_its_credit_note_pass_the_factur_x_xsd(customer_factory, brand, fr_vat):
    # given an invoice with a 20 % line, a 5.5 % line and an exempt line
    codes = seeded_tax_codes()
    customer = customer_factory(brand=brand, siren="303265045")
    draft = _draft(customer, [(None, 10000), (codes["reduced"], 2000), (codes["exempt-training"], 50000)])
    invoice = invoice_finalize(invoice=invoice_create(draft=draft, at=ISSUED_AT, customer=customer), at=ISSUED_AT)
    lines = list(invoice.lines.order_by("position"))

    # when its Factur-X XML is built
    xml = invoice_cii_xml(invoice=invoice, lines=lines)

    # then it validates, with one breakdown per category and rate and the exempt one's VATEX code
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    groups = root.xpath("//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", namespaces=NS)
    assert sorted(
        (g.findtext("ram:CategoryCode", namespaces=NS), g.findtext("ram:RateApplicablePercent", namespaces=NS))
        for g in groups
    ) == [("E", "0"), ("S", "20"), ("S", "5.5")]
    exempt = next(g for g in groups if g.findtext("ram:CategoryCode", namespaces=NS) == "E")
    assert exempt.findtext("ram:ExemptionReasonCode", namespaces=NS) == "VATEX-EU-132-1I"
    assert "132(1)(i)" in exempt.findtext("ram:ExemptionReason", namespaces=NS)
    assert invoice.total == 10000 + 2000 + 50000 + 2000 + 110
    assert lines[2].tax_code == "exempt-training"

    # and its credit note keeps the exemption reason, and validates too
    note = credit_note_create(
        invoice=invoice, amount=invoice.total, reason="order_change", at=ISSUED_AT + timedelta(days=1)
    )
    assert {row.get("exemption_reason_code") for row in note.tax_breakdown} >= {"VATEX-EU-132-1I"}
    note_xml = credit_note_cii_xml(credit_note=note, lines=list(note.lines.all()))
    assert xml_check_xsd(note_xml, flavor="factur-x", level="en16931")
    assert b"VATEX-EU-132-1I" in note_xml


def test_bulk_issue_reads_tax_codes_once_per_chunk(customer_factory, brand, fr_vat):
    # given two chunks of 2 and 6 invoices (after a first one), each line with a tax code
    codes = seeded_tax_codes()
    customers = [customer_factory(brand=brand) for _ in range(9)]

    def chunk(members):
        return [(_draft(c, [(codes["reduced"], 1000), (codes["super-reduced"], 500)]), c) for c in members]

    invoices_issue_bulk(items=chunk(customers[:1]), at=ISSUED_AT)  # the series' first use costs more
    small, large = chunk(customers[1:3]), chunk(customers[3:])

    # when both are issued
    with CaptureQueriesContext(connection) as small_queries:
        invoices_issue_bulk(items=small, at=ISSUED_AT)
    with CaptureQueriesContext(connection) as large_queries:
        ids = invoices_issue_bulk(items=large, at=ISSUED_AT)

    # then the query count does not grow with the lines, and each invoice has both rates
    assert len(small_queries.captured_queries) == len(large_queries.captured_queries)
    for invoice in Invoice.objects.filter(pk__in=ids):
        assert [row["rate"] for row in invoice.tax_breakdown] == ["5.5", "2.1"]
