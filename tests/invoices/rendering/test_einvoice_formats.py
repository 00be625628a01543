"""Issue 18 item 2: UBL 2.1 and CII D16B (and the Factur-X XML) for EN 16931 with the French
CIUS fields, valid against their XSDs and the official EN 16931 Schematron, across the VAT
cases (domestic, mixed rates, reverse charge, export, exempt, discounts, prepaid), for
invoices and credit notes, with negative controls proving each check catches a bad file."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from lxml import etree

from config.errors import DomainError
from invoices.models import CreditNote, Invoice
from invoices.rendering.cii import build_cii_xml
from invoices.rendering.cius_fr import french_cius_problems
from invoices.rendering.einvoice import customer_einvoice_syntax, document_einvoice
from invoices.rendering.en16931 import credit_note_document, invoice_document
from invoices.rendering.facturx import credit_note_cii_xml, invoice_cii_xml
from invoices.rendering.ubl import build_ubl_xml
from invoices.services.credit_notes import credit_note_create
from invoices.services.drafts import invoice_create
from invoices.services.finalize import invoice_finalize
from invoices.types import DraftInvoice, DraftLine
from tests.einvoice_validation import schematron_failures, xsd_errors
from tests.factories import PriceFactory, ProductFactory
from tests.invoices.helpers import ISSUED_AT, create_draft
from tests.invoices.rendering.conftest import reprice
from tests.tax_codes import seeded_tax_codes

pytestmark = pytest.mark.django_db

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
ROUTING_ID = "303265045_FACTURES"


def texts(xml: bytes, path: str) -> list[str]:
    return [element.text for element in etree.fromstring(xml).xpath(path, namespaces=NS)]


def _lines(document):
    if isinstance(document, Invoice):
        return list(document.lines.select_related("price__product").order_by("position", "pk"))
    return list(document.lines.select_related("invoice_line__price__product").order_by("pk"))


def content(document, *, paid: int = 0, routing_id: str = ""):
    if isinstance(document, Invoice):
        return invoice_document(invoice=document, lines=_lines(document), paid=paid, routing_id=routing_id)
    return credit_note_document(credit_note=document, lines=_lines(document), routing_id=routing_id)


@pytest.fixture
def tax_code_invoice(branded_customer, branded):
    """10 %, 5.5 %, 2.1 % and an exempt (E, VATEX-EU-132-1I) line; one product is goods."""
    codes = seeded_tax_codes()
    draft_lines = []
    for index, (code, amount, kind) in enumerate(
        [
            ("intermediate", 10000, "services"),
            ("reduced", 2000, "goods"),
            ("super-reduced", 1500, "services"),
            ("exempt-training", 50000, "services"),
        ]
    ):
        price = PriceFactory(product=ProductFactory(tax_code=codes[code], supply_kind=kind))
        draft_lines.append(DraftLine(kind="one_off", description=f"Line {index + 1}", amount=amount, price_id=price.pk))
    draft = DraftInvoice(
        customer_id=branded_customer.pk, currency="EUR", billing_reason="manual", lines=tuple(draft_lines)
    )
    invoice = invoice_create(draft=draft, at=ISSUED_AT, customer=branded_customer)
    return invoice_finalize(invoice=invoice, at=ISSUED_AT)


@pytest.fixture
def goods_export_invoice(customer_factory, branded, tax_rate):
    """Goods shipped to the United States: category G (export), VATEX-EU-G."""
    customer = customer_factory(brand=branded, country="US", preferred_language="en", city="Boston")
    draft = create_draft(customer, [30000, 4500])
    reprice(draft, rates=[("G", Decimal(0)), ("G", Decimal(0))])
    return invoice_finalize(invoice=draft, at=ISSUED_AT)


@pytest.fixture
def cases(mixed_invoice, reverse_charge_invoice, export_invoice, goods_export_invoice, tax_code_invoice):
    """name -> EN 16931 content, for invoices and credit notes across the VAT cases."""
    later = ISSUED_AT + timedelta(days=2)
    mixed_note = credit_note_create(invoice=mixed_invoice, amount=mixed_invoice.total, reason="order_change", at=later)
    tax_code_note = credit_note_create(invoice=tax_code_invoice, amount=5000, reason="order_change", at=later)
    reverse_note = credit_note_create(
        invoice=reverse_charge_invoice, amount=reverse_charge_invoice.total, reason="duplicate", at=later
    )
    return {
        "domestic-discounts-debits": content(mixed_invoice, routing_id=ROUTING_ID),
        "domestic-prepaid": content(mixed_invoice, paid=mixed_invoice.amount_due // 2),
        "domestic-paid": content(mixed_invoice, paid=mixed_invoice.amount_due),
        "mixed-rates-exempt": content(tax_code_invoice),
        "reverse-charge": content(reverse_charge_invoice),
        "export-services-o": content(export_invoice),
        "export-goods-g": content(goods_export_invoice),
        "credit-note-domestic": content(mixed_note, routing_id=ROUTING_ID),
        "credit-note-mixed-rates": content(tax_code_note),
        "credit-note-reverse-charge": content(reverse_note),
    }


def test_ubl_and_cii_pass_their_xsds_and_the_french_cius_checks(cases):
    for name, document in cases.items():
        for syntax, xml in (("ubl", build_ubl_xml(document)), ("cii", build_cii_xml(document))):
            assert xsd_errors(xml) == [], (name, syntax)
            assert french_cius_problems(xml) == [], (name, syntax)


def test_french_cius_fields_in_both_syntaxes(cases):
    domestic, note = cases["domestic-discounts-debits"], cases["credit-note-domestic"]
    cii, ubl = build_cii_xml(domestic), build_ubl_xml(domestic)

    # SIREN of seller and buyer (scheme 0002), the routing id as BT-49, the seller's BT-34
    assert texts(cii, "//ram:SpecifiedLegalOrganization/ram:ID") == ["552100554", "303265045"]
    assert texts(ubl, "//cac:PartyLegalEntity/cbc:CompanyID[@schemeID='0002']") == ["552100554", "303265045"]
    assert texts(cii, "//ram:BuyerTradeParty/ram:URIUniversalCommunication/ram:URIID[@schemeID='0225']") == [ROUTING_ID]
    assert texts(ubl, "//cac:AccountingCustomerParty/cac:Party/cbc:EndpointID") == [ROUTING_ID]
    assert texts(ubl, "//cac:AccountingSupplierParty/cac:Party/cbc:EndpointID") == ["552100554"]
    # without a routing id, the buyer's SIREN is its address
    assert texts(build_ubl_xml(cases["domestic-prepaid"]), "//cac:AccountingCustomerParty//cbc:EndpointID") == [
        "303265045"
    ]
    # the delivery address (differs from the billing one)
    assert texts(cii, "//ram:ShipToTradeParty/ram:PostalTradeAddress/ram:LineOne") == ["Entrepôt 7, 12 quai Nord, Lyon"]
    assert texts(ubl, "//cac:Delivery/cac:DeliveryLocation/cac:Address/cbc:StreetName") == [
        "Entrepôt 7, 12 quai Nord, Lyon"
    ]
    # VAT on debits: BT-8 = invoice date, and the mention as a note
    assert set(texts(cii, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:DueDateTypeCode")) == {"5"}
    assert any(note_text.startswith("#TXD#") for note_text in texts(ubl, "/*/cbc:Note"))
    # operation category: services (S1), goods + services (M1), already paid (S2)
    assert texts(cii, "//ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID") == ["S1"]
    assert texts(build_ubl_xml(cases["mixed-rates-exempt"]), "/*/cbc:ProfileID") == ["M1"]
    assert texts(build_ubl_xml(cases["domestic-paid"]), "/*/cbc:ProfileID") == ["S2"]
    # a credit note references its invoice (BT-25)
    invoice_number = cases["domestic-prepaid"].number
    assert texts(build_ubl_xml(note), "//cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == [invoice_number]
    assert texts(build_cii_xml(note), "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == [invoice_number]


def test_vat_cases_carry_their_categories_and_exemption_codes(cases):
    ubl = {name: build_ubl_xml(document) for name, document in cases.items()}
    subtotal = "//cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory"
    assert sorted(texts(ubl["mixed-rates-exempt"], f"{subtotal}/cbc:Percent")) == ["0", "10", "2.1", "5.5"]
    assert texts(ubl["mixed-rates-exempt"], f"{subtotal}/cbc:TaxExemptionReasonCode") == ["VATEX-EU-132-1I"]
    assert texts(ubl["reverse-charge"], f"{subtotal}/cbc:TaxExemptionReasonCode") == ["VATEX-EU-AE"]
    assert texts(ubl["export-goods-g"], f"{subtotal}/cbc:TaxExemptionReasonCode") == ["VATEX-EU-G"]
    assert texts(ubl["export-services-o"], "//cac:PartyTaxScheme") == []  # BR-O-2..4: no VAT ids
    assert texts(ubl["domestic-prepaid"], "//cac:LegalMonetaryTotal/cbc:PrepaidAmount") != []
    assert texts(ubl["domestic-discounts-debits"], "//cac:InvoiceLine/cac:AllowanceCharge/cbc:Amount") != []


def test_en16931_schematron_passes_every_case_and_fails_a_corrupted_total(cases):
    # given every case in both syntaxes and the Factur-X XML, plus one corrupted copy of each syntax
    cii = {f"cii-{name}": build_cii_xml(document) for name, document in cases.items()}
    ubl = {f"ubl-{name}": build_ubl_xml(document) for name, document in cases.items()}
    total = cases["domestic-prepaid"].grand_total
    corrupted_amount = f"{(total + 100) / 100:.2f}"
    cii["cii-corrupted"] = _replace_text(cii["cii-domestic-prepaid"], "//ram:GrandTotalAmount", corrupted_amount)
    ubl["ubl-corrupted"] = _replace_text(
        ubl["ubl-domestic-prepaid"], "//cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", corrupted_amount
    )
    cii |= {f"facturx-{name}": invoice_xml for name, invoice_xml in _facturx_xml(cases).items()}

    # when the EN 16931 Schematron runs (one JVM per syntax)
    results = {**schematron_failures(cii, syntax="cii"), **schematron_failures(ubl, syntax="ubl")}

    # then the corrupted totals fail (BR-CO-15: BT-112 = BT-109 + BT-110) and nothing else does
    for corrupted in ("cii-corrupted", "ubl-corrupted"):
        assert any("BR-CO-15" in failure.rule + failure.text for failure in results.pop(corrupted)), corrupted
    assert {name: failures for name, failures in results.items() if failures} == {}


def _facturx_xml(cases) -> dict[str, bytes]:
    """What the PDF embeds, through facturx.py's own entry points."""
    result = {}
    for name, document in cases.items():
        if name.startswith("credit-note"):
            note = CreditNote.objects.get(number=document.number)
            result[name] = credit_note_cii_xml(credit_note=note, lines=_lines(note))
        elif name != "domestic-paid":
            invoice = Invoice.objects.get(number=document.number)
            result[name] = invoice_cii_xml(invoice=invoice, lines=_lines(invoice))
    return result


def _replace_text(xml: bytes, path: str, value: str) -> bytes:
    root = etree.fromstring(xml)
    root.xpath(path, namespaces=NS)[0].text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_a_missing_mandatory_element_fails_the_xsd(cases):
    document = cases["domestic-prepaid"]
    ubl = etree.fromstring(build_ubl_xml(document))
    ubl.remove(ubl.find("cbc:IssueDate", NS))
    cii = etree.fromstring(build_cii_xml(document))
    cii.remove(cii.find("rsm:ExchangedDocument", NS))

    assert any("IssueDate" in error for error in xsd_errors(etree.tostring(ubl)))
    assert any("ExchangedDocument" in error for error in xsd_errors(etree.tostring(cii)))


def test_french_cius_checks_catch_a_bad_siren_and_a_missing_address(cases):
    xml = build_cii_xml(cases["domestic-prepaid"])
    root = etree.fromstring(xml)
    root.xpath("//ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID", namespaces=NS)[0].text = "552100555"
    uri = root.xpath("//ram:BuyerTradeParty/ram:URIUniversalCommunication", namespaces=NS)[0]
    uri.getparent().remove(uri)

    problems = french_cius_problems(etree.tostring(root))

    assert any(problem.startswith("BT-30") for problem in problems)
    assert any(problem.startswith("BT-49") for problem in problems)


def test_dispatcher_gives_each_syntax_and_the_customer_setting_picks_it(mixed_invoice):
    customer = mixed_invoice.customer
    assert customer_einvoice_syntax(customer=customer) == "factur-x"  # auto, no PA default
    assert customer_einvoice_syntax(customer=customer, pa_default="ubl") == "ubl"
    customer.einvoice_syntax = "cii"
    assert customer_einvoice_syntax(customer=customer, pa_default="ubl") == "cii"

    ubl = document_einvoice(kind="invoice", document=mixed_invoice, syntax="ubl", routing_id=ROUTING_ID)
    cii = document_einvoice(kind="invoice", document=mixed_invoice, syntax="cii")
    facturx = document_einvoice(kind="invoice", document=mixed_invoice, syntax="factur-x", routing_id=ROUTING_ID)

    assert (ubl.filename, ubl.media_type) == (f"{mixed_invoice.number}-ubl.xml", "application/xml")
    assert etree.fromstring(ubl.content).tag.endswith("}Invoice")
    assert cii.filename.endswith("-cii.xml") and xsd_errors(cii.content) == []
    assert facturx.media_type == "application/pdf" and facturx.content.startswith(b"%PDF")
    assert ROUTING_ID.encode() not in cii.content
    with pytest.raises(DomainError):
        document_einvoice(kind="invoice", document=mixed_invoice, syntax="pdf")  # type: ignore[arg-type]


def test_every_demo_documents_factur_x_xml_and_ubl_pass_en16931_and_the_french_cius():
    # given the demo's year of documents, as Factur-X XML (CII) and as UBL
    call_command("seed_demo", stdout=io.StringIO())
    documents, ubl = {}, {}
    for invoice in Invoice.objects.exclude(status__in=["draft"]).exclude(number=""):
        documents[f"invoice-{invoice.pk}"] = invoice_cii_xml(invoice=invoice, lines=_lines(invoice))
        ubl[f"invoice-{invoice.pk}"] = build_ubl_xml(content(invoice))
    for note in CreditNote.objects.exclude(number=""):
        documents[f"credit-note-{note.pk}"] = credit_note_cii_xml(credit_note=note, lines=_lines(note))
        ubl[f"credit-note-{note.pk}"] = build_ubl_xml(content(note))
    assert len(documents) >= 30  # (the demo issues no credit note: the cases above have them)
    # plus one UBL copy with a seller SIREN that is not nine digits (the negative control)
    first = next(iter(ubl))
    ubl["bad-siren"] = _replace_text(ubl[first], UBL_SELLER_SIREN, "55210055")

    # when the EN 16931 and the French CIUS (BR-FR) Schematron run on both syntaxes
    results = {
        **{f"en16931-cii-{n}": f for n, f in schematron_failures(documents, syntax="cii").items()},
        **{f"en16931-ubl-{n}": f for n, f in schematron_failures(ubl, syntax="ubl").items()},
        **{f"br-fr-cii-{n}": f for n, f in schematron_failures(documents, syntax="cii", rules="br-fr").items()},
        **{f"br-fr-ubl-{n}": f for n, f in schematron_failures(ubl, syntax="ubl", rules="br-fr").items()},
    }

    # then the bad SIREN fails a BR-FR rule, and every document passes both rule sets in both syntaxes
    assert any(failure.rule.startswith("BR-FR") for failure in results.pop("br-fr-ubl-bad-siren"))
    results.pop("en16931-ubl-bad-siren")
    assert {name: sorted({failure.rule for failure in found}) for name, found in results.items() if found} == {}


UBL_SELLER_SIREN = "//cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:CompanyID"


def test_french_cius_schematron_passes_the_cases_in_both_syntaxes_and_fails_a_bad_siren(cases):
    # given every case in CII, in UBL and as Factur-X XML, plus a copy of each syntax with a
    # SIREN that is not nine digits
    cii = {f"cii-{name}": build_cii_xml(document) for name, document in cases.items()}
    cii |= {f"facturx-{name}": invoice_xml for name, invoice_xml in _facturx_xml(cases).items()}
    cii["cii-bad-siren"] = _replace_text(
        cii["cii-domestic-prepaid"], "//ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID", "55210055"
    )
    ubl = {f"ubl-{name}": build_ubl_xml(document) for name, document in cases.items()}
    ubl["ubl-bad-siren"] = _replace_text(ubl["ubl-domestic-prepaid"], UBL_SELLER_SIREN, "55210055")

    # when FNFE-MPE's BR-FR Schematron (flow 2, EN 16931 profile) runs on both syntaxes
    results = {
        **schematron_failures(cii, syntax="cii", rules="br-fr"),
        **schematron_failures(ubl, syntax="ubl", rules="br-fr"),
    }

    # then each bad SIREN fails a BR-FR rule (the negative controls)...
    for bad in ("cii-bad-siren", "ubl-bad-siren"):
        assert any(failure.rule.startswith("BR-FR") for failure in results.pop(bad)), bad
    # ...and every case passes, the credit notes too (BR-FR-05: their payment notes)
    assert any("credit-note" in name for name in results)
    assert {name: sorted({failure.rule for failure in found}) for name, found in results.items() if found} == {}


def test_credit_notes_carry_the_payment_notes_of_their_invoice(cases, mixed_invoice):
    # BR-FR-05: PMT, PMD and AAB once each, on credit notes as on invoices, in both syntaxes
    note = CreditNote.objects.filter(invoice=mixed_invoice).get()
    invoice_notes = {m["key"]: m["text"] for m in mixed_invoice.issued_snapshot["mentions"]}
    note_notes = {m["key"]: m["text"] for m in note.issued_snapshot["mentions"]}
    for key in ("late_payment", "recovery_indemnity", "early_payment"):
        assert note_notes[key] == invoice_notes[key]
    cii = build_cii_xml(cases["credit-note-domestic"])
    assert sorted(texts(cii, "//ram:IncludedNote/ram:SubjectCode")).count("PMT") == 1
    assert {"PMT", "PMD", "AAB"} <= set(texts(cii, "//ram:IncludedNote/ram:SubjectCode"))
    ubl_notes = texts(build_ubl_xml(cases["credit-note-domestic"]), "/*/cbc:Note")
    assert [note[:5] for note in ubl_notes if note[:5] in ("#PMT#", "#PMD#", "#AAB#")] == ["#PMD#", "#PMT#", "#AAB#"]


def test_a_credit_note_issued_without_payment_notes_takes_its_invoices(cases, mixed_invoice):
    # given a credit note issued before credit notes carried the payment mentions
    note = CreditNote.objects.filter(invoice=mixed_invoice).get()
    payment_keys = {"late_payment", "recovery_indemnity", "early_payment"}
    note.issued_snapshot = {
        **note.issued_snapshot,
        "mentions": [m for m in note.issued_snapshot["mentions"] if m["key"] not in payment_keys],
    }
    # when its e-invoice is written, then the notes are the invoice's as issued
    xml = build_cii_xml(content(note))
    assert {"PMT", "PMD", "AAB"} <= set(texts(xml, "//ram:IncludedNote/ram:SubjectCode"))
    late = next(m["text"] for m in mixed_invoice.issued_snapshot["mentions"] if m["key"] == "late_payment")
    assert late in texts(xml, "//ram:IncludedNote/ram:Content")
