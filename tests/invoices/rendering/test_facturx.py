"""Factur-X (EN 16931): the CII XML embedded in each issued PDF passes the XSD."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from facturx import get_facturx_xml_from_pdf, get_level, xml_check_xsd
from lxml import etree
from pypdf import PdfReader

from invoices.services.credit_notes import credit_note_create
from invoices.services.pdf import credit_note_pdf_render, invoice_pdf_render
from tests.invoices.helpers import ISSUED_AT

pytestmark = pytest.mark.django_db

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}


def embedded_xml(pdf: bytes) -> etree._Element:
    filename, xml = get_facturx_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml"
    # the XSD of the EN 16931 profile, as the factur-x library ships it
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931")
    root = etree.fromstring(xml)
    assert get_level(root) == "en16931"
    return root


def texts(root, path: str) -> list[str]:
    return [element.text for element in root.xpath(path, namespaces=NS)]


def test_invoice_with_discounts_and_mixed_vat_rates(mixed_invoice):
    pdf = invoice_pdf_render(invoice=mixed_invoice)
    catalog = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    xmp = catalog["/Metadata"].get_object().get_data()
    assert b"pdfaid" in xmp and b"<pdfaid:part>3</pdfaid:part>" in xmp  # PDF/A-3
    assert "/OutputIntents" in catalog

    root = embedded_xml(pdf)

    assert texts(root, "//rsm:ExchangedDocument/ram:TypeCode") == ["380"]
    assert texts(root, "//rsm:ExchangedDocument/ram:ID") == [mixed_invoice.number]
    assert sorted(
        texts(root, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent")
    ) == [
        "20",
        "5.5",
    ]
    allowances = texts(root, "//ram:SpecifiedLineTradeSettlement/ram:SpecifiedTradeAllowanceCharge/ram:ActualAmount")
    assert sum(float(amount) for amount in allowances) == pytest.approx(mixed_invoice.discount_total / 100)
    summation = root.xpath("//ram:SpecifiedTradeSettlementHeaderMonetarySummation", namespaces=NS)[0]
    assert (
        summation.findtext("ram:TaxBasisTotalAmount", namespaces=NS) == f"{mixed_invoice.total_excluding_tax / 100:.2f}"
    )
    assert summation.findtext("ram:GrandTotalAmount", namespaces=NS) == f"{mixed_invoice.total / 100:.2f}"
    assert summation.findtext("ram:DuePayableAmount", namespaces=NS) == f"{mixed_invoice.amount_due / 100:.2f}"
    line_totals = texts(root, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")
    assert sum(round(float(total) * 100) for total in line_totals) == mixed_invoice.total_excluding_tax  # BR-CO-10
    # the seller and the buyer with their SIRENs and VAT ids; VAT on debits (BT-8 = 5)
    assert texts(root, "//ram:SpecifiedLegalOrganization/ram:ID") == ["552100554", "303265045"]
    assert "FR03552100554" in texts(root, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID")
    assert set(texts(root, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:DueDateTypeCode")) == {"5"}
    assert texts(root, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == ["FR7630006000011234567890189"]


def test_reverse_charge_invoice_is_category_ae_with_both_vat_ids(reverse_charge_invoice):
    root = embedded_xml(invoice_pdf_render(invoice=reverse_charge_invoice))

    assert set(texts(root, "//ram:CategoryCode")) == {"AE"}
    assert texts(root, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:ExemptionReasonCode") == [
        "VATEX-EU-AE"
    ]
    assert texts(root, "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == ["DE136695976"]
    assert texts(root, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == ["FR03552100554"]
    assert texts(root, "//ram:TaxTotalAmount") == ["0.00"]


def test_invoice_outside_the_eu_is_category_o_without_vat_ids(export_invoice):
    root = embedded_xml(invoice_pdf_render(invoice=export_invoice))

    assert set(texts(root, "//ram:CategoryCode")) == {"O"}
    # BR-O-2..4: no seller or buyer VAT identifier on a "not subject to VAT" invoice
    assert root.xpath("//ram:SpecifiedTaxRegistration", namespaces=NS) == []
    assert root.xpath("//ram:RateApplicablePercent", namespaces=NS) == []


def test_credit_note_is_type_381_and_references_its_invoice(mixed_invoice):
    credit_note = credit_note_create(
        invoice=mixed_invoice, amount=4000, reason="order_change", at=ISSUED_AT + timedelta(days=3)
    )

    root = embedded_xml(credit_note_pdf_render(credit_note=credit_note))

    assert texts(root, "//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert texts(root, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == [mixed_invoice.number]
    assert texts(root, "//ram:GrandTotalAmount") == [f"{credit_note.total / 100:.2f}"]
    assert texts(root, "//ram:TaxTotalAmount") == [f"{credit_note.tax_total / 100:.2f}"]
