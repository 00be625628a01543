"""The EN 16931 content of an issued invoice or credit note, independent of the syntax.

`facturx.py` / `cii.py` (UN/CEFACT CII D16B) and `ubl.py` (OASIS UBL 2.1) serialise the
same `EInvoiceDocument`, so both syntaxes say the same thing: one place decides the VAT
breakdown, the line nets, the prepaid amount and the French CIUS fields.

Built from frozen data (the issued snapshot, the stored lines and totals), amounts in
minor units written with the currency's decimals.

French CIUS fields (the 2026 reform, AFNOR XP Z12-012):
- SIREN of seller and buyer as legal registration ids (BT-30 / BT-47, scheme 0002);
- electronic addresses (BT-34 / BT-49): the routing id given by the caller (the PA
  directory's answer) else the SIREN, both with scheme 0225 (French directory); a party
  without a SIREN keeps its email (scheme EM);
- the delivery address (BG-15) when the buyer's differs from its billing address;
- the operation category in the business process (BT-23): B1 goods, S1 services, M1
  mixed (B2/S2/M2 when already fully paid), derived from the lines' products;
- VAT on debits: BT-8 (VAT point date code) = invoice date (CII 5 / UBL 3) for a seller
  that opted for it, else paid-to date (72 / 432), with the mention as a note (BT-22).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

from invoices.rendering.formatting import exponent

EN16931_CUSTOMIZATION: Final = "urn:cen.eu:en16931:2017"
INVOICE_TYPE: Final = "380"
CREDIT_NOTE_TYPE: Final = "381"
SIREN_SCHEME: Final = "0002"  # ISO 6523 ICD: SIREN (legal registration, BT-30 / BT-47)
FRENCH_ADDRESS_SCHEME: Final = "0225"  # EAS: French directory address (SIREN-based routing)
EMAIL_SCHEME: Final = "EM"
EXEMPTIONS: Final = {
    "AE": ("VATEX-EU-AE", "Reverse charge"),
    "O": ("VATEX-EU-O", "Not subject to VAT"),
    "E": ("VATEX-EU-132", "Exempt based on article 132 of Council Directive 2006/112/EC"),
    "K": ("VATEX-EU-IC", "Intra-Community supply"),
    "G": ("VATEX-EU-G", "Export outside the EU"),
}
# Note subject codes (UNCL4451) for the French mentions.
NOTE_SUBJECTS: Final = {
    "late_payment": "PMD",
    "recovery_indemnity": "PMT",
    "early_payment": "AAB",
    # payment terms (BT-20) carry no subject code: AAB is the early-payment mention's, and
    # BR-FR-06 allows each of PMT, PMD and AAB once (FNFE-MPE's BR-FR Schematron caught it)
    "vat_on_debits": "TXD",
}
GOODS: Final = "goods"
SERVICES: Final = "services"
MIXED: Final = "mixed"
_BUSINESS_PROCESS: Final = {GOODS: "B", SERVICES: "S", MIXED: "M"}


@dataclass(frozen=True)
class VatGroup:
    category: str
    rate: str
    taxable: int
    tax: int
    exemption: tuple[str, str] | None


@dataclass(frozen=True)
class ElectronicAddress:
    value: str
    scheme: str


@dataclass(frozen=True)
class EInvoiceDocument:
    """Everything a syntax writes; `lines` are stored invoice or credit-note lines."""

    type_code: str
    number: str
    currency: str
    snapshot: dict[str, Any]
    lines: Sequence[Any]
    vat_groups: Sequence[VatGroup]
    tax_total: int
    grand_total: int
    prepaid: int
    due_payable: int
    period: tuple[date, date] | None = None
    preceding_invoice: tuple[str, str] | None = None
    operation_category: str = SERVICES
    routing_id: str = ""

    @property
    def seller(self) -> dict[str, Any]:
        return dict(self.snapshot.get("seller") or {})

    @property
    def buyer(self) -> dict[str, Any]:
        return dict(self.snapshot.get("buyer") or {})

    @property
    def is_invoice(self) -> bool:
        return self.type_code == INVOICE_TYPE

    @property
    def line_total(self) -> int:
        return sum(line_net(line) for line in self.lines)

    @property
    def with_vat_ids(self) -> bool:
        # BR-O-2..4: a document with category O carries no VAT ids at all.
        return all(line.tax_category != "O" for line in self.lines)

    @property
    def vat_on_debits(self) -> bool:
        return bool(self.seller.get("vat_on_debits"))

    @property
    def business_process(self) -> str:
        """BT-23: the French billing frame, e.g. S1 (services), B2 (goods, already paid)."""
        paid_already = self.is_invoice and self.due_payable == 0 and self.prepaid > 0
        return f"{_BUSINESS_PROCESS.get(self.operation_category, 'S')}{2 if paid_already else 1}"

    @property
    def seller_address(self) -> ElectronicAddress | None:
        return electronic_address(self.seller, routing_id="")

    @property
    def buyer_address(self) -> ElectronicAddress | None:
        return electronic_address(self.buyer, routing_id=self.routing_id)

    @property
    def delivery_lines(self) -> list[str]:
        """BG-15 address lines, when the buyer gave a delivery address different from its billing one."""
        buyer = self.buyer
        text = (buyer.get("delivery_address") or "").strip()
        billing = " ".join(str(buyer.get(key) or "") for key in ("address_line1", "postal_code", "city"))
        if not text or " ".join(text.split()) == " ".join(billing.split()):
            return []
        return [line.strip() for line in text.splitlines() if line.strip()][:3]

    def mention(self, key: str) -> str:
        return next((m["text"] for m in self.snapshot.get("mentions", []) if m.get("key") == key), "")


def electronic_address(party: dict[str, Any], *, routing_id: str) -> ElectronicAddress | None:
    if routing_id:
        return ElectronicAddress(routing_id, FRENCH_ADDRESS_SCHEME)
    if party.get("siren"):
        return ElectronicAddress(str(party["siren"]), FRENCH_ADDRESS_SCHEME)
    if party.get("email"):
        return ElectronicAddress(str(party["email"]), EMAIL_SCHEME)
    return None


def amount_text(amount: int, currency: str) -> str:
    places = exponent(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


def rate_text(value: Any) -> str:
    rate = Decimal(str(value)).normalize()
    return f"{rate:f}" if rate != rate.to_integral_value() else f"{rate.to_integral_value():f}"


def line_net(line: Any) -> int:
    """A line's net amount (BT-131): after its discount, excluding VAT (also for tax-inclusive lines)."""
    net = line.amount - getattr(line, "discount_amount", 0)
    return net - line.tax_amount if getattr(line, "tax_inclusive", False) else net


def line_price(line: Any, currency: str) -> tuple[str, Decimal]:
    """(item net price BT-146, quantity BT-129). BR-27: the price is never negative, so a
    credit line has a negative quantity instead."""
    net = line_net(line)
    quantity = Decimal(line.quantity or 1)
    unit_price = (Decimal(net) / quantity if quantity else Decimal(net)).scaleb(-exponent(currency))
    if unit_price < 0:
        unit_price, quantity = -unit_price, -quantity
    return f"{unit_price.quantize(Decimal('0.000001')).normalize():f}", quantity


def vat_groups(lines: Sequence[Any], breakdown: Iterable[dict[str, Any]]) -> list[VatGroup]:
    """VAT groups by (category, rate): stored groups may split one rate into inclusive
    and exclusive parts, EN 16931 wants one breakdown per category and rate (BG-23).
    Each with its exemption (code, text): the group's stored reason (tax codes), else the
    category's default (`EXEMPTIONS`), else None (S, Z: BR-S-10, BR-Z-10 want none)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    reasons: dict[tuple[str, str], tuple[str, str]] = {}
    for group in breakdown:
        key = (group["category"], rate_text(group["rate"]))
        groups[key][0] += group["taxable_amount"]
        groups[key][1] += group["tax_amount"]
        if group.get("exemption_reason_code") or group.get("exemption_reason"):
            reasons.setdefault(key, (group.get("exemption_reason_code", ""), group.get("exemption_reason", "")))
    if not groups:  # e.g. a document stored without breakdown: rebuild from the lines
        for line in lines:
            key = (line.tax_category, rate_text(line.tax_rate))
            groups[key][0] += line_net(line)
            groups[key][1] += line.tax_amount
            code, text = getattr(line, "tax_exemption_reason_code", ""), getattr(line, "tax_exemption_reason", "")
            if code or text:
                reasons.setdefault(key, (code, text))
    return [
        VatGroup(category, rate, taxable, tax, reasons.get((category, rate)) or EXEMPTIONS.get(category))
        for (category, rate), (taxable, tax) in groups.items()
    ]


def _line_supply_kind(line: Any) -> str | None:
    """The product's kind of supply behind a line (goods / services), None when the line has no product."""
    invoice_line = getattr(line, "invoice_line", None) if not hasattr(line, "price") else line
    price = getattr(invoice_line, "price", None) if invoice_line is not None else None
    product = getattr(price, "product", None) if price is not None else None
    return getattr(product, "supply_kind", None) if product is not None else None


def operation_category(*, lines: Sequence[Any], snapshot: dict[str, Any]) -> str:
    """Goods, services or mixed, from the lines' products; a line without a product takes
    the brand's category as issued (a SaaS brand's default: services)."""
    fallback = (snapshot.get("seller") or {}).get("operation_category") or SERVICES
    kinds = {_line_supply_kind(line) or fallback for line in lines} or {fallback}
    if MIXED in kinds or len(kinds) > 1:
        return MIXED
    return kinds.pop()


def invoice_document(*, invoice: Any, lines: Sequence[Any], paid: int = 0, routing_id: str = "") -> EInvoiceDocument:
    """`paid`: money received since issue (0 for the original as issued). It joins the
    prepaid amount (BT-113) and leaves the amount due (BT-115), so BR-CO-16 still holds."""
    snapshot = invoice.issued_snapshot
    period = None
    if invoice.period_start and invoice.period_end:
        period = (invoice.period_start.date(), invoice.period_end.date())
    return EInvoiceDocument(
        type_code=INVOICE_TYPE,
        number=invoice.number,
        currency=invoice.currency,
        snapshot=snapshot,
        lines=lines,
        vat_groups=vat_groups(lines, invoice.tax_breakdown),
        tax_total=invoice.tax_total,
        grand_total=invoice.total,
        # BT-113: customer credit and prepaid credits (wallets) both paid part of the total beforehand.
        prepaid=invoice.starting_balance_applied + getattr(invoice, "credits_applied", 0) + paid,
        due_payable=invoice.amount_due - paid,
        period=period,
        operation_category=operation_category(lines=lines, snapshot=snapshot),
        routing_id=routing_id,
    )


PAYMENT_NOTE_KEYS: Final = ("late_payment", "recovery_indemnity", "early_payment")


def _with_payment_mentions(snapshot: dict[str, Any], invoice: Any) -> dict[str, Any]:
    """BR-FR-05 wants the payment notes (PMD, PMT, AAB) on credit notes too. Credit notes issued
    since then carry them in their snapshot; an older one takes them from the invoice it
    corrects, as that invoice issued them (its snapshot is frozen too)."""
    mentions = list(snapshot.get("mentions") or [])
    present = {mention.get("key") for mention in mentions}
    if invoice is None or all(key in present for key in PAYMENT_NOTE_KEYS):
        return snapshot
    issued = {m.get("key"): m for m in (invoice.issued_snapshot or {}).get("mentions") or []}
    mentions += [issued[key] for key in PAYMENT_NOTE_KEYS if key not in present and key in issued]
    return {**snapshot, "mentions": mentions}


def credit_note_document(*, credit_note: Any, lines: Sequence[Any], routing_id: str = "") -> EInvoiceDocument:
    snapshot = _with_payment_mentions(credit_note.issued_snapshot, getattr(credit_note, "invoice", None))
    related = snapshot.get("invoice") or {}
    return EInvoiceDocument(
        type_code=CREDIT_NOTE_TYPE,
        number=credit_note.number,
        currency=credit_note.currency,
        snapshot=snapshot,
        lines=lines,
        vat_groups=vat_groups(lines, credit_note.tax_breakdown),
        tax_total=credit_note.tax_total,
        grand_total=credit_note.total,
        prepaid=0,
        due_payable=credit_note.total,
        # BT-25 / BT-26: the invoice this credit note corrects.
        preceding_invoice=(related["number"], related["issue_date"]) if related.get("number") else None,
        operation_category=operation_category(lines=lines, snapshot=snapshot),
        routing_id=routing_id,
    )
