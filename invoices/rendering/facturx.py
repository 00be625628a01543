"""Factur-X / ZUGFeRD: the CII XML (EN 16931 profile) of an issued invoice or credit
note, embedded into its PDF/A-3 with the `factur-x` library (which validates the XML
against the XSD on the way).

Built from frozen data only, like the PDF. Amounts are the stored integers in minor
units, written with the currency's decimals. Lines carry their net amount (after the
line's discount, excluding VAT, also for tax-inclusive lines); the discount of a line
is a line allowance (BG-27), so the sum of the line nets is the tax basis (BT-106 =
BT-109, no document-level allowance). VAT categories are UNCL5305 codes as stored on
the lines (S, AE, O ...). Rules from EN 16931 that shape the output:

- BR-AE-*: a reverse-charge invoice carries both the seller's and the buyer's VAT ids,
  and an exemption reason code VATEX-EU-AE;
- BR-O-*: an invoice with category O ("not subject to VAT") carries NEITHER the seller
  nor the buyer VAT id (BT-31, BT-48), and VATEX-EU-O;
- BG-23: one VAT breakdown per category and rate (20 % and 5.5 % lines give two S
  groups); exempt (E) and out-of-scope (O) groups carry the exemption reason of their
  tax code (BT-120 text, BT-121 VATEX code) when the stored breakdown names one, else the
  category's generic one; S and Z groups carry none (BR-S-10, BR-Z-10);
- BT-8 (VAT point date code): 5 (invoice date) when the seller opted for VAT on debits,
  72 (paid to date) otherwise for services (French "TVA sur les encaissements").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Final

from lxml import etree

from invoices.rendering.formatting import exponent

RSM: Final = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM: Final = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT: Final = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT: Final = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
_NSMAP: Final = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
EN16931_GUIDELINE: Final = "urn:cen.eu:en16931:2017"
INVOICE_TYPE: Final = "380"
CREDIT_NOTE_TYPE: Final = "381"
_EXEMPTIONS: Final = {
    "AE": ("VATEX-EU-AE", "Reverse charge"),
    "O": ("VATEX-EU-O", "Not subject to VAT"),
    "E": ("VATEX-EU-132", "Exempt based on article 132 of Council Directive 2006/112/EC"),
    "K": ("VATEX-EU-IC", "Intra-Community supply"),
    "G": ("VATEX-EU-G", "Export outside the EU"),
}
# Note subject codes (UNCL4451) for the French mentions.
_NOTE_SUBJECTS: Final = {
    "late_payment": "PMD",
    "recovery_indemnity": "PMT",
    "early_payment": "AAB",
    "payment_terms": "AAB",
}


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


def _amount(amount: int, currency: str) -> str:
    places = exponent(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


def _rate(value: Any) -> str:
    rate = Decimal(str(value)).normalize()
    return f"{rate:f}" if rate != rate.to_integral_value() else f"{rate.to_integral_value():f}"


def _party(parent: etree._Element, name: str, party: dict[str, Any], *, with_vat_id: bool) -> None:
    element = _ram(parent, name)
    _ram(element, "Name", party.get("legal_name") or party.get("name") or "")
    siren = party.get("siren")
    if siren:
        legal = _ram(element, "SpecifiedLegalOrganization")
        _ram(legal, "ID", siren, schemeID="0002")  # 0002: SIREN (ISO 6523 ICD)
        if party.get("name") and party.get("name") != party.get("legal_name"):
            _ram(legal, "TradingBusinessName", party["name"])
    address = _ram(element, "PostalTradeAddress")
    if party.get("postal_code"):
        _ram(address, "PostcodeCode", party["postal_code"])
    if party.get("address_line1"):
        _ram(address, "LineOne", party["address_line1"])
    if party.get("address_line2"):
        _ram(address, "LineTwo", party["address_line2"])
    if party.get("city"):
        _ram(address, "CityName", party["city"])
    _ram(address, "CountryID", party.get("country") or "FR")
    if party.get("region"):
        _ram(address, "CountrySubDivisionName", party["region"])
    if party.get("email"):
        _ram(_ram(element, "URIUniversalCommunication"), "URIID", party["email"], schemeID="EM")
    if with_vat_id and party.get("vat_number"):
        _ram(_ram(element, "SpecifiedTaxRegistration"), "ID", party["vat_number"], schemeID="VA")


def _tax(parent: etree._Element, *, category: str, rate: Any) -> None:
    tax = _ram(parent, "ApplicableTradeTax")
    _ram(tax, "TypeCode", "VAT")
    _ram(tax, "CategoryCode", category)
    if category != "O":  # BR-O-5: no rate for "not subject to VAT"
        _ram(tax, "RateApplicablePercent", _rate(rate))


def _line_net(line: Any) -> int:
    net = line.amount - getattr(line, "discount_amount", 0)
    return net - line.tax_amount if getattr(line, "tax_inclusive", False) else net


def _breakdown(
    lines: Sequence[Any], breakdown: Iterable[dict[str, Any]]
) -> list[tuple[str, str, int, int, tuple[str, str] | None]]:
    """VAT groups by (category, rate): stored groups may split one rate into inclusive
    and exclusive parts, EN 16931 wants one breakdown per category and rate (BG-23).
    Each with its exemption (code, text): the group's stored reason (tax codes), else the
    category's default (`_EXEMPTIONS`), else None (S, Z: BR-S-10, BR-Z-10 want none)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[tuple[str, str], tuple[str, str]] = {}
    for group in breakdown:
        key = (group["category"], _rate(group["rate"]))
        groups[key][0] += group["taxable_amount"]
        groups[key][1] += group["tax_amount"]
        if group.get("exemption_reason_code") or group.get("exemption_reason"):
            reasons.setdefault(key, (group.get("exemption_reason_code", ""), group.get("exemption_reason", "")))
    if not groups:  # e.g. a document stored without breakdown: rebuild from the lines
        for line in lines:
            key = (line.tax_category, _rate(line.tax_rate))
            groups[key][0] += _line_net(line)
            groups[key][1] += line.tax_amount
            code, text = getattr(line, "tax_exemption_reason_code", ""), getattr(line, "tax_exemption_reason", "")
            if code or text:
                reasons.setdefault(key, (code, text))
    result = []
    for (category, rate), (taxable, tax) in groups.items():
        exemption = reasons.get((category, rate)) or _EXEMPTIONS.get(category)
        result.append((category, rate, taxable, tax, exemption))
    return result


def build_cii_xml(
    *,
    type_code: str,
    number: str,
    currency: str,
    snapshot: dict[str, Any],
    lines: Sequence[Any],
    tax_breakdown: Iterable[dict[str, Any]],
    tax_total: int,
    grand_total: int,
    prepaid: int = 0,
    due_payable: int,
    period: tuple[date, date] | None = None,
    preceding_invoice: tuple[str, str] | None = None,
) -> bytes:
    """The CII XML (EN 16931) of a document; amounts in minor units."""
    seller, buyer = snapshot.get("seller", {}), snapshot.get("buyer", {})
    categories = {line.tax_category for line in lines}
    # BR-O-2..4: a document with category O carries no VAT ids at all.
    with_vat_ids = "O" not in categories

    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=_NSMAP)
    context = etree.SubElement(root, f"{{{RSM}}}ExchangedDocumentContext")
    _ram(_ram(context, "GuidelineSpecifiedDocumentContextParameter"), "ID", EN16931_GUIDELINE)

    document = etree.SubElement(root, f"{{{RSM}}}ExchangedDocument")
    _ram(document, "ID", number)
    _ram(document, "TypeCode", type_code)
    _date(document, "IssueDateTime", snapshot["issue_date"])
    for mention in snapshot.get("mentions", []):
        note = _ram(document, "IncludedNote")
        _ram(note, "Content", mention["text"])
        subject = _NOTE_SUBJECTS.get(mention.get("key", ""))
        if subject:
            _ram(note, "SubjectCode", subject)

    transaction = etree.SubElement(root, f"{{{RSM}}}SupplyChainTradeTransaction")
    for index, line in enumerate(lines, start=1):
        net = _line_net(line)
        quantity = Decimal(line.quantity or 1)
        item = _ram(transaction, "IncludedSupplyChainTradeLineItem")
        _ram(_ram(item, "AssociatedDocumentLineDocument"), "LineID", str(index))
        _ram(_ram(item, "SpecifiedTradeProduct"), "Name", line.description)
        agreement = _ram(item, "SpecifiedLineTradeAgreement")
        unit_price = (Decimal(net) / quantity if quantity else Decimal(net)).scaleb(-exponent(currency))
        # BR-27: the item net price is never negative; a credit line has a negative quantity instead.
        if unit_price < 0:
            unit_price, quantity = -unit_price, -quantity
        price_text = f"{unit_price.quantize(Decimal('0.000001')).normalize():f}"
        _ram(_ram(agreement, "NetPriceProductTradePrice"), "ChargeAmount", price_text)
        delivery = _ram(item, "SpecifiedLineTradeDelivery")
        _ram(delivery, "BilledQuantity", f"{quantity.normalize():f}", unitCode="C62")
        settlement = _ram(item, "SpecifiedLineTradeSettlement")
        _tax(settlement, category=line.tax_category, rate=line.tax_rate)
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
            _ram(allowance, "ActualAmount", _amount(discount, currency))
            _ram(allowance, "Reason", "Discount")
        summation = _ram(settlement, "SpecifiedTradeSettlementLineMonetarySummation")
        _ram(summation, "LineTotalAmount", _amount(net, currency))

    agreement = _ram(transaction, "ApplicableHeaderTradeAgreement")
    _party(agreement, "SellerTradeParty", seller, with_vat_id=with_vat_ids)
    _party(agreement, "BuyerTradeParty", buyer, with_vat_id=with_vat_ids)
    _ram(transaction, "ApplicableHeaderTradeDelivery")

    settlement = _ram(transaction, "ApplicableHeaderTradeSettlement")
    _ram(settlement, "PaymentReference", number)
    _ram(settlement, "InvoiceCurrencyCode", currency)
    if type_code == INVOICE_TYPE and seller.get("iban"):
        means = _ram(settlement, "SpecifiedTradeSettlementPaymentMeans")
        _ram(means, "TypeCode", "58")  # SEPA credit transfer
        _ram(_ram(means, "PayeePartyCreditorFinancialAccount"), "IBANID", seller["iban"].replace(" ", ""))
        if seller.get("bic"):
            _ram(_ram(means, "PayeeSpecifiedCreditorFinancialInstitution"), "BICID", seller["bic"])
    vat_on_debits = bool(seller.get("vat_on_debits"))
    breakdown = _breakdown(lines, tax_breakdown)
    for category, rate, taxable, tax, exemption in breakdown:
        group = _ram(settlement, "ApplicableTradeTax")
        _ram(group, "CalculatedAmount", _amount(tax, currency))
        _ram(group, "TypeCode", "VAT")
        if exemption and exemption[1]:
            _ram(group, "ExemptionReason", exemption[1])
        _ram(group, "BasisAmount", _amount(taxable, currency))
        _ram(group, "CategoryCode", category)
        if exemption and exemption[0]:
            _ram(group, "ExemptionReasonCode", exemption[0])
        if category == "S":
            _ram(group, "DueDateTypeCode", "5" if vat_on_debits else "72")
        if category != "O":
            _ram(group, "RateApplicablePercent", rate)
    if period:
        billing = _ram(settlement, "BillingSpecifiedPeriod")
        _date(billing, "StartDateTime", period[0])
        _date(billing, "EndDateTime", period[1])
    if type_code == INVOICE_TYPE:
        terms = _ram(settlement, "SpecifiedTradePaymentTerms")
        payment_terms = next((m["text"] for m in snapshot.get("mentions", []) if m.get("key") == "payment_terms"), "")
        if payment_terms:
            _ram(terms, "Description", payment_terms)
        if snapshot.get("due_date"):
            _date(terms, "DueDateDateTime", snapshot["due_date"])
    line_total = sum(_line_net(line) for line in lines)
    summation = _ram(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation")
    _ram(summation, "LineTotalAmount", _amount(line_total, currency))
    _ram(summation, "TaxBasisTotalAmount", _amount(line_total, currency))
    _ram(summation, "TaxTotalAmount", _amount(tax_total, currency), currencyID=currency)
    _ram(summation, "GrandTotalAmount", _amount(grand_total, currency))
    if prepaid:
        _ram(summation, "TotalPrepaidAmount", _amount(prepaid, currency))
    _ram(summation, "DuePayableAmount", _amount(due_payable, currency))
    if preceding_invoice:
        reference = _ram(settlement, "InvoiceReferencedDocument")
        _ram(reference, "IssuerAssignedID", preceding_invoice[0])
        _date(reference, "FormattedIssueDateTime", preceding_invoice[1], qualified=True)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def invoice_cii_xml(*, invoice: Any, lines: Sequence[Any], paid: int = 0) -> bytes:
    """`paid`: money received since issue (0 for the original as issued). It joins the
    prepaid amount (BT-113) and leaves the amount due (BT-115), so BR-CO-16 still holds."""
    snapshot = invoice.issued_snapshot
    period = None
    if invoice.period_start and invoice.period_end:
        period = (invoice.period_start.date(), invoice.period_end.date())
    return build_cii_xml(
        type_code=INVOICE_TYPE,
        number=invoice.number,
        currency=invoice.currency,
        snapshot=snapshot,
        lines=lines,
        tax_breakdown=invoice.tax_breakdown,
        tax_total=invoice.tax_total,
        grand_total=invoice.total,
        # BT-113: customer credit and prepaid credits (wallets) both paid part of the total beforehand.
        prepaid=invoice.starting_balance_applied + getattr(invoice, "credits_applied", 0) + paid,
        due_payable=invoice.amount_due - paid,
        period=period,
    )


def credit_note_cii_xml(*, credit_note: Any, lines: Sequence[Any]) -> bytes:
    snapshot = credit_note.issued_snapshot
    related = snapshot.get("invoice") or {}
    return build_cii_xml(
        type_code=CREDIT_NOTE_TYPE,
        number=credit_note.number,
        currency=credit_note.currency,
        snapshot=snapshot,
        lines=lines,
        tax_breakdown=credit_note.tax_breakdown,
        tax_total=credit_note.tax_total,
        grand_total=credit_note.total,
        due_payable=credit_note.total,
        preceding_invoice=(related["number"], related["issue_date"]) if related.get("number") else None,
    )


def embed_facturx(*, pdf: bytes, xml: bytes, lang: str) -> bytes:
    """A Factur-X PDF (PDF/A-3 + factur-x.xml), the XML checked against the EN 16931 XSD."""
    # deferred: factur-x loads its XSD schemas on import; only building a PDF needs it
    from facturx import generate_from_binary

    return generate_from_binary(pdf, xml, flavor="factur-x", level="en16931", check_xsd=True, lang=lang)
