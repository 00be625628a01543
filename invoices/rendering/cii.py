"""UN/CEFACT CII D16B CrossIndustryInvoice for EN 16931 with the French CIUS fields.

The same XML is the Factur-X (EN 16931 profile) attachment of the PDF (`facturx.py`) and
the standalone CII flow sent to a PA (`einvoice.py`): the EN 16931 profile of Factur-X is
CII D16B restricted to EN 16931, so one builder serves both. The content comes from
`en16931.EInvoiceDocument` (shared with UBL). Rules from EN 16931 that shape the output:

- BR-AE-*: a reverse-charge invoice carries both the seller's and the buyer's VAT ids,
  and an exemption reason code VATEX-EU-AE;
- BR-O-*: an invoice with category O ("not subject to VAT") carries NEITHER the seller
  nor the buyer VAT id (BT-31, BT-48), and VATEX-EU-O;
- BG-23: one VAT breakdown per category and rate; exempt (E), export (G) and out-of-scope
  (O) groups carry their exemption reason (BT-120 text, BT-121 VATEX code); S and Z none;
- lines carry their net amount (after the line's discount, excluding VAT); the discount
  of a line is a line allowance (BG-27), so the sum of the line nets is the tax basis
  (BT-106 = BT-109: the engine spreads document discounts over the lines);
- BT-8 (VAT point date code, `DueDateTypeCode` of each S group): 5 (invoice date) when the
  seller opted for VAT on debits, 72 (paid to date) otherwise.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from lxml import etree

from invoices.rendering.en16931 import (
    EN16931_CUSTOMIZATION,
    NOTE_SUBJECTS,
    SIREN_SCHEME,
    EInvoiceDocument,
    ElectronicAddress,
    amount_text,
    line_net,
    line_price,
    rate_text,
)

RSM: Final = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM: Final = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT: Final = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT: Final = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
_NSMAP: Final = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
MEDIA_TYPE: Final = "application/xml"


def _ram(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{RAM}}}{name}", **attributes)
    if text is not None:
        element.text = text
    return element


def _date(parent: etree._Element, name: str, day: date | str, *, qualified: bool = False) -> None:
    value = day if isinstance(day, str) else day.isoformat()
    holder = _ram(parent, name)
    namespace = QDT if qualified else UDT
    etree.SubElement(holder, f"{{{namespace}}}DateTimeString", format="102").text = value.replace("-", "")


def _party(
    parent: etree._Element, name: str, party: dict, *, with_vat_id: bool, address: ElectronicAddress | None
) -> None:
    element = _ram(parent, name)
    _ram(element, "Name", party.get("legal_name") or party.get("name") or "")
    siren = party.get("siren")
    if siren:
        legal = _ram(element, "SpecifiedLegalOrganization")
        _ram(legal, "ID", siren, schemeID=SIREN_SCHEME)
        if party.get("name") and party.get("name") != party.get("legal_name"):
            _ram(legal, "TradingBusinessName", party["name"])
    _postal_address(element, party, lines=[party.get("address_line1") or "", party.get("address_line2") or ""])
    if address:  # BT-34 / BT-49
        _ram(_ram(element, "URIUniversalCommunication"), "URIID", address.value, schemeID=address.scheme)
    if with_vat_id and party.get("vat_number"):
        _ram(_ram(element, "SpecifiedTaxRegistration"), "ID", party["vat_number"], schemeID="VA")


def _postal_address(parent: etree._Element, party: dict, *, lines: list[str], with_city: bool = True) -> None:
    address = _ram(parent, "PostalTradeAddress")
    if with_city and party.get("postal_code"):
        _ram(address, "PostcodeCode", party["postal_code"])
    for tag, text in zip(("LineOne", "LineTwo", "LineThree"), lines, strict=False):
        if text:
            _ram(address, tag, text)
    if with_city and party.get("city"):
        _ram(address, "CityName", party["city"])
    _ram(address, "CountryID", party.get("country") or "FR")
    if with_city and party.get("region"):
        _ram(address, "CountrySubDivisionName", party["region"])


def build_cii_xml(document: EInvoiceDocument) -> bytes:
    """The CII D16B XML (EN 16931) of a document."""
    currency, seller, buyer = document.currency, document.seller, document.buyer
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=_NSMAP)
    context = etree.SubElement(root, f"{{{RSM}}}ExchangedDocumentContext")
    _ram(_ram(context, "BusinessProcessSpecifiedDocumentContextParameter"), "ID", document.business_process)
    _ram(_ram(context, "GuidelineSpecifiedDocumentContextParameter"), "ID", EN16931_CUSTOMIZATION)

    header = etree.SubElement(root, f"{{{RSM}}}ExchangedDocument")
    _ram(header, "ID", document.number)
    _ram(header, "TypeCode", document.type_code)
    _date(header, "IssueDateTime", document.snapshot["issue_date"])
    for mention in document.snapshot.get("mentions", []):
        note = _ram(header, "IncludedNote")
        _ram(note, "Content", mention["text"])
        subject = NOTE_SUBJECTS.get(mention.get("key", ""))
        if subject:
            _ram(note, "SubjectCode", subject)

    transaction = etree.SubElement(root, f"{{{RSM}}}SupplyChainTradeTransaction")
    for index, line in enumerate(document.lines, start=1):
        price_text, quantity = line_price(line, currency)
        item = _ram(transaction, "IncludedSupplyChainTradeLineItem")
        _ram(_ram(item, "AssociatedDocumentLineDocument"), "LineID", str(index))
        _ram(_ram(item, "SpecifiedTradeProduct"), "Name", line.description)
        agreement = _ram(item, "SpecifiedLineTradeAgreement")
        _ram(_ram(agreement, "NetPriceProductTradePrice"), "ChargeAmount", price_text)
        delivery = _ram(item, "SpecifiedLineTradeDelivery")
        _ram(delivery, "BilledQuantity", f"{quantity.normalize():f}", unitCode="C62")
        settlement = _ram(item, "SpecifiedLineTradeSettlement")
        tax = _ram(settlement, "ApplicableTradeTax")
        _ram(tax, "TypeCode", "VAT")
        _ram(tax, "CategoryCode", line.tax_category)
        if line.tax_category != "O":  # BR-O-5: no rate for "not subject to VAT"
            _ram(tax, "RateApplicablePercent", rate_text(line.tax_rate))
        start, end = getattr(line, "period_start", None), getattr(line, "period_end", None)
        if start and end:
            billing = _ram(settlement, "BillingSpecifiedPeriod")
            _date(billing, "StartDateTime", start.date())
            _date(billing, "EndDateTime", end.date())
        discount = getattr(line, "discount_amount", 0)
        if discount:
            allowance = _ram(settlement, "SpecifiedTradeAllowanceCharge")
            indicator = _ram(allowance, "ChargeIndicator")
            etree.SubElement(indicator, f"{{{UDT}}}Indicator").text = "false"
            _ram(allowance, "ActualAmount", amount_text(discount, currency))
            _ram(allowance, "Reason", "Discount")
        summation = _ram(settlement, "SpecifiedTradeSettlementLineMonetarySummation")
        _ram(summation, "LineTotalAmount", amount_text(line_net(line), currency))

    agreement = _ram(transaction, "ApplicableHeaderTradeAgreement")
    with_vat_ids = document.with_vat_ids
    _party(agreement, "SellerTradeParty", seller, with_vat_id=with_vat_ids, address=document.seller_address)
    _party(agreement, "BuyerTradeParty", buyer, with_vat_id=with_vat_ids, address=document.buyer_address)
    delivery = _ram(transaction, "ApplicableHeaderTradeDelivery")
    if document.delivery_lines:  # BG-15: deliver-to address, only when it differs
        ship_to = _ram(delivery, "ShipToTradeParty")
        _ram(ship_to, "Name", buyer.get("legal_name") or "")
        _postal_address(ship_to, buyer, lines=document.delivery_lines, with_city=False)

    settlement = _ram(transaction, "ApplicableHeaderTradeSettlement")
    _ram(settlement, "PaymentReference", document.number)
    _ram(settlement, "InvoiceCurrencyCode", currency)
    if document.is_invoice and seller.get("iban"):
        means = _ram(settlement, "SpecifiedTradeSettlementPaymentMeans")
        _ram(means, "TypeCode", "58")  # SEPA credit transfer
        _ram(_ram(means, "PayeePartyCreditorFinancialAccount"), "IBANID", seller["iban"].replace(" ", ""))
        if seller.get("bic"):
            _ram(_ram(means, "PayeeSpecifiedCreditorFinancialInstitution"), "BICID", seller["bic"])
    for group in document.vat_groups:
        element = _ram(settlement, "ApplicableTradeTax")
        _ram(element, "CalculatedAmount", amount_text(group.tax, currency))
        _ram(element, "TypeCode", "VAT")
        if group.exemption and group.exemption[1]:
            _ram(element, "ExemptionReason", group.exemption[1])
        _ram(element, "BasisAmount", amount_text(group.taxable, currency))
        _ram(element, "CategoryCode", group.category)
        if group.exemption and group.exemption[0]:
            _ram(element, "ExemptionReasonCode", group.exemption[0])
        if group.category == "S":
            _ram(element, "DueDateTypeCode", "5" if document.vat_on_debits else "72")
        if group.category != "O":
            _ram(element, "RateApplicablePercent", group.rate)
    if document.period:
        billing = _ram(settlement, "BillingSpecifiedPeriod")
        _date(billing, "StartDateTime", document.period[0])
        _date(billing, "EndDateTime", document.period[1])
    if document.is_invoice:
        terms = _ram(settlement, "SpecifiedTradePaymentTerms")
        if document.mention("payment_terms"):
            _ram(terms, "Description", document.mention("payment_terms"))
        if document.snapshot.get("due_date"):
            _date(terms, "DueDateDateTime", document.snapshot["due_date"])
    line_total = document.line_total
    summation = _ram(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation")
    _ram(summation, "LineTotalAmount", amount_text(line_total, currency))
    _ram(summation, "TaxBasisTotalAmount", amount_text(line_total, currency))
    _ram(summation, "TaxTotalAmount", amount_text(document.tax_total, currency), currencyID=currency)
    _ram(summation, "GrandTotalAmount", amount_text(document.grand_total, currency))
    if document.prepaid:
        _ram(summation, "TotalPrepaidAmount", amount_text(document.prepaid, currency))
    _ram(summation, "DuePayableAmount", amount_text(document.due_payable, currency))
    if document.preceding_invoice:
        reference = _ram(settlement, "InvoiceReferencedDocument")
        _ram(reference, "IssuerAssignedID", document.preceding_invoice[0])
        _date(reference, "FormattedIssueDateTime", document.preceding_invoice[1], qualified=True)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
