"""The e-reporting flow as XML (docs/ereporting.md, "Flow format").

Modelled on the DGFiP's flow 10 ("Spécifications externes", e-reporting: a `Report` holding a
transmission header, a `TransactionsReport` of daily groups (TG-31: date TT-77, currency TT-78,
category TT-81, amount excluding tax TT-82, VAT TT-83, per-rate subtotals) and a
`PaymentsReport` of daily collected amounts per rate). The element names follow that
structure but the namespace is Tarif's own (`urn:tarif:ereporting:1`): the official XSD is not
published openly, so this flow is **not** validated against it; a PA that needs the official
syntax converts it (or the lead swaps this renderer once the XSD is at hand).

Amounts are decimal strings in major units (e.g. "1234.56"). The reported amounts are in EUR
(`currencyID="EUR"`: the VAT is declared in euros); a group in another currency keeps its
currency code (TT-78), the ledger's exchange rate of its day and its amounts in that currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from lxml import etree

from config.money import currency_exponent
from invoices.ereporting.selectors import B2C, REPORTING_CURRENCY, PaymentTotal, TransactionTotal

EUR = REPORTING_CURRENCY

NAMESPACE = "urn:tarif:ereporting:1"
# Flow 10.1/10.2 for international business buyers, 10.3/10.4 for consumers.
FLOW_CODES = {("transactions", B2C): "10.3", ("payments", B2C): "10.4"}
INTERNATIONAL_FLOW_CODES = {"transactions": "10.1", "payments": "10.2"}


def major(amount: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    return format(Decimal(amount).scaleb(-exponent), f".{exponent}f")


def _element(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def flow_code(*, kind: str, scope: str) -> str:
    return FLOW_CODES.get((kind, scope)) or INTERNATIONAL_FLOW_CODES[kind]


def render_flow(
    *,
    tracking_id: str,
    kind: str,
    issuer_siren: str,
    issuer_vat_number: str,
    issuer_name: str,
    start: date,
    end: date,
    version: int,
    corrects_tracking_id: str,
    created_at: datetime,
    transactions: Sequence[TransactionTotal] = (),
    payments: Sequence[PaymentTotal] = (),
) -> bytes:
    """The flow's bytes (UTF-8 XML); deterministic for the same inputs (no clock read here)."""
    root = etree.Element(f"{{{NAMESPACE}}}Report", nsmap={None: NAMESPACE})
    header = _element(root, "ReportDocument")
    _element(header, "Id", tracking_id)  # TT-1
    _element(header, "IssueDateTime", created_at.strftime("%Y%m%d%H%M%S"))  # TT-3
    _element(header, "TypeCode", "CORRECTION" if corrects_tracking_id else "INITIAL")
    _element(header, "Version", str(version))
    if corrects_tracking_id:
        _element(header, "CorrectedReportId", corrects_tracking_id)
    issuer = _element(header, "Issuer")  # TT-12..15: the declaring company
    _element(issuer, "Id", issuer_siren, schemeID="SIREN")
    if issuer_vat_number:
        _element(issuer, "VatNumber", issuer_vat_number)
    _element(issuer, "Name", issuer_name)
    _element(issuer, "RoleCode", "MOA")
    period = _element(header, "Period")  # TT-17, TT-18
    _element(period, "StartDate", start.strftime("%Y%m%d"))
    _element(period, "EndDate", end.strftime("%Y%m%d"))
    if kind == "transactions":
        report = _element(root, "TransactionsReport")
        for row in transactions:
            group = _element(report, "Transactions", flow=flow_code(kind=kind, scope=row.scope))
            _element(group, "Date", row.day.strftime("%Y%m%d"))  # TT-77
            _element(group, "CurrencyCode", row.currency)  # TT-78
            _element(group, "CategoryCode", row.category_code)  # TT-81
            _element(group, "OperationCategory", row.operation_category)
            _element(group, "TaxExclusiveAmount", major(row.taxable_amount_eur, EUR), currencyID=EUR)  # TT-82
            _element(group, "TaxTotal", major(row.tax_amount_eur, EUR), currencyID=EUR)  # TT-83
            if row.currency != EUR:
                _element(group, "ExchangeRate", row.exchange_rate)
                _element(group, "InvoiceCurrencyTaxExclusiveAmount", major(row.taxable_amount, row.currency))
                _element(group, "InvoiceCurrencyTaxTotal", major(row.tax_amount, row.currency))
            _element(group, "InvoiceCount", str(row.invoices))
            _element(group, "CreditNoteCount", str(row.credit_notes))
            subtotal = _element(group, "TaxSubtotal")
            _element(subtotal, "TaxCategoryCode", row.vat_category)
            _element(subtotal, "TaxPercent", row.rate)
            _element(subtotal, "TaxableAmount", major(row.taxable_amount_eur, EUR), currencyID=EUR)
            _element(subtotal, "TaxAmount", major(row.tax_amount_eur, EUR), currencyID=EUR)
    else:
        report = _element(root, "PaymentsReport")
        for payment in payments:
            group = _element(report, "Payment", flow=flow_code(kind=kind, scope=payment.scope))
            _element(group, "Date", payment.day.strftime("%Y%m%d"))
            _element(group, "CurrencyCode", payment.currency)
            subtotal = _element(group, "SubTotals")
            _element(subtotal, "TaxCategoryCode", payment.vat_category)
            _element(subtotal, "TaxPercent", payment.rate)
            _element(subtotal, "Amount", major(payment.amount_eur, EUR), currencyID=EUR)
            if payment.currency != EUR:
                _element(subtotal, "ExchangeRate", payment.exchange_rate)
                _element(subtotal, "InvoiceCurrencyAmount", major(payment.amount, payment.currency))
            _element(subtotal, "PaymentCount", str(payment.payments))
            if payment.refunds:
                _element(subtotal, "RefundCount", str(payment.refunds))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
