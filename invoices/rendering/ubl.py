"""OASIS UBL 2.1 Invoice and CreditNote for EN 16931 with the French CIUS fields.

Same content as the CII (`en16931.EInvoiceDocument`), in UBL's syntax binding. Where the
two syntaxes differ:
- BT-8 is `InvoicePeriod/DescriptionCode` with UNCL2005 codes (3 invoice date for VAT on
  debits, 432 paid to date); BR-CO-19 wants a period date next to it, so a document
  without a billing period carries no BT-8 in UBL (the note BT-22 still says it);
- a credit note has no `DueDate`; its lines are `CreditNoteLine` / `CreditedQuantity`.
"""

from __future__ import annotations

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

INVOICE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
MEDIA_TYPE: Final = "application/xml"


def _cac(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC}}}{name}")


def _cbc(parent: etree._Element, name: str, text: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC}}}{name}", **attributes)
    element.text = text
    return element


def _address(parent: etree._Element, name: str, party: dict, *, lines: list[str], with_city: bool = True) -> None:
    address = _cac(parent, name)
    for tag, text in zip(("StreetName", "AdditionalStreetName"), lines, strict=False):
        if text:
            _cbc(address, tag, text)
    if with_city and party.get("city"):
        _cbc(address, "CityName", party["city"])
    if with_city and party.get("postal_code"):
        _cbc(address, "PostalZone", party["postal_code"])
    if with_city and party.get("region"):
        _cbc(address, "CountrySubentity", party["region"])
    if len(lines) > 2 and lines[2]:
        _cbc(_cac(address, "AddressLine"), "Line", lines[2])
    _cbc(_cac(address, "Country"), "IdentificationCode", party.get("country") or "FR")


def _party(
    parent: etree._Element, name: str, party: dict, *, with_vat_id: bool, address: ElectronicAddress | None
) -> None:
    element = _cac(_cac(parent, name), "Party")
    if address:  # BT-34 / BT-49
        _cbc(element, "EndpointID", address.value, schemeID=address.scheme)
    if party.get("name") and party.get("name") != party.get("legal_name"):
        _cbc(_cac(element, "PartyName"), "Name", party["name"])  # BT-28 trading name
    _address(
        element, "PostalAddress", party, lines=[party.get("address_line1") or "", party.get("address_line2") or ""]
    )
    if with_vat_id and party.get("vat_number"):
        scheme = _cac(element, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", party["vat_number"])
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    legal = _cac(element, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", party.get("legal_name") or party.get("name") or "")
    if party.get("siren"):
        _cbc(legal, "CompanyID", party["siren"], schemeID=SIREN_SCHEME)
    if party.get("email"):
        _cbc(_cac(element, "Contact"), "ElectronicMail", party["email"])


def _tax_category(
    parent: etree._Element, name: str, *, category: str, rate: str, exemption: tuple[str, str] | None = None
) -> None:
    element = _cac(parent, name)
    _cbc(element, "ID", category)
    if category != "O":  # BR-O-5 / BR-O-10: no rate for "not subject to VAT"
        _cbc(element, "Percent", rate)
    if exemption and exemption[0]:
        _cbc(element, "TaxExemptionReasonCode", exemption[0])
    if exemption and exemption[1]:
        _cbc(element, "TaxExemptionReason", exemption[1])
    _cbc(_cac(element, "TaxScheme"), "ID", "VAT")


def build_ubl_xml(document: EInvoiceDocument) -> bytes:
    """The UBL 2.1 Invoice (380) or CreditNote (381) XML (EN 16931) of a document."""
    currency, seller, buyer = document.currency, document.seller, document.buyer
    is_invoice = document.is_invoice
    namespace = INVOICE_NS if is_invoice else CREDIT_NOTE_NS
    root = etree.Element(
        f"{{{namespace}}}{'Invoice' if is_invoice else 'CreditNote'}",
        nsmap={None: namespace, "cac": CAC, "cbc": CBC},
    )
    _cbc(root, "CustomizationID", EN16931_CUSTOMIZATION)
    _cbc(root, "ProfileID", document.business_process)  # BT-23
    _cbc(root, "ID", document.number)
    _cbc(root, "IssueDate", str(document.snapshot["issue_date"]))
    if is_invoice and document.snapshot.get("due_date"):
        _cbc(root, "DueDate", str(document.snapshot["due_date"]))
    _cbc(root, "InvoiceTypeCode" if is_invoice else "CreditNoteTypeCode", document.type_code)
    for mention in document.snapshot.get("mentions", []):
        subject = NOTE_SUBJECTS.get(mention.get("key", ""))
        _cbc(root, "Note", f"#{subject}#{mention['text']}" if subject else mention["text"])
    _cbc(root, "DocumentCurrencyCode", currency)
    if document.period:
        period = _cac(root, "InvoicePeriod")
        _cbc(period, "StartDate", document.period[0].isoformat())
        _cbc(period, "EndDate", document.period[1].isoformat())
        if any(group.category == "S" for group in document.vat_groups):
            _cbc(period, "DescriptionCode", "3" if document.vat_on_debits else "432")  # BT-8
    if document.preceding_invoice:  # BT-25 / BT-26
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", document.preceding_invoice[0])
        _cbc(reference, "IssueDate", str(document.preceding_invoice[1]))
    with_vat_ids = document.with_vat_ids
    _party(root, "AccountingSupplierParty", seller, with_vat_id=with_vat_ids, address=document.seller_address)
    _party(root, "AccountingCustomerParty", buyer, with_vat_id=with_vat_ids, address=document.buyer_address)
    if document.delivery_lines:  # BG-15: deliver-to address, only when it differs
        delivery = _cac(root, "Delivery")
        _address(_cac(delivery, "DeliveryLocation"), "Address", buyer, lines=document.delivery_lines, with_city=False)
        _cbc(_cac(_cac(delivery, "DeliveryParty"), "PartyName"), "Name", buyer.get("legal_name") or "")
    if is_invoice and seller.get("iban"):
        means = _cac(root, "PaymentMeans")
        _cbc(means, "PaymentMeansCode", "58")  # SEPA credit transfer
        _cbc(means, "PaymentID", document.number)
        account = _cac(means, "PayeeFinancialAccount")
        _cbc(account, "ID", seller["iban"].replace(" ", ""))
        if seller.get("bic"):
            _cbc(_cac(account, "FinancialInstitutionBranch"), "ID", seller["bic"])
    if is_invoice and document.mention("payment_terms"):
        _cbc(_cac(root, "PaymentTerms"), "Note", document.mention("payment_terms"))

    tax_total = _cac(root, "TaxTotal")
    _cbc(tax_total, "TaxAmount", amount_text(document.tax_total, currency), currencyID=currency)
    for group in document.vat_groups:
        subtotal = _cac(tax_total, "TaxSubtotal")
        _cbc(subtotal, "TaxableAmount", amount_text(group.taxable, currency), currencyID=currency)
        _cbc(subtotal, "TaxAmount", amount_text(group.tax, currency), currencyID=currency)
        _tax_category(subtotal, "TaxCategory", category=group.category, rate=group.rate, exemption=group.exemption)

    line_total = document.line_total
    totals = _cac(root, "LegalMonetaryTotal")
    _cbc(totals, "LineExtensionAmount", amount_text(line_total, currency), currencyID=currency)
    _cbc(totals, "TaxExclusiveAmount", amount_text(line_total, currency), currencyID=currency)
    _cbc(totals, "TaxInclusiveAmount", amount_text(document.grand_total, currency), currencyID=currency)
    if document.prepaid:
        _cbc(totals, "PrepaidAmount", amount_text(document.prepaid, currency), currencyID=currency)
    _cbc(totals, "PayableAmount", amount_text(document.due_payable, currency), currencyID=currency)

    for index, line in enumerate(document.lines, start=1):
        price_text, quantity = line_price(line, currency)
        element = _cac(root, "InvoiceLine" if is_invoice else "CreditNoteLine")
        _cbc(element, "ID", str(index))
        _cbc(
            element,
            "InvoicedQuantity" if is_invoice else "CreditedQuantity",
            f"{quantity.normalize():f}",
            unitCode="C62",
        )
        _cbc(element, "LineExtensionAmount", amount_text(line_net(line), currency), currencyID=currency)
        start, end = getattr(line, "period_start", None), getattr(line, "period_end", None)
        if start and end:
            period = _cac(element, "InvoicePeriod")
            _cbc(period, "StartDate", start.date().isoformat())
            _cbc(period, "EndDate", end.date().isoformat())
        discount = getattr(line, "discount_amount", 0)
        if discount:  # BG-27
            allowance = _cac(element, "AllowanceCharge")
            _cbc(allowance, "ChargeIndicator", "false")
            _cbc(allowance, "AllowanceChargeReason", "Discount")
            _cbc(allowance, "Amount", amount_text(discount, currency), currencyID=currency)
        item = _cac(element, "Item")
        _cbc(item, "Name", line.description)
        _tax_category(item, "ClassifiedTaxCategory", category=line.tax_category, rate=rate_text(line.tax_rate))
        _cbc(_cac(element, "Price"), "PriceAmount", price_text, currencyID=currency)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
