"""What a document shows, as plain data built from FROZEN values only.

An invoice renders from its `issued_snapshot` (seller, buyer, branding, custom fields,
legal mentions), its stored lines and its stored totals, never from the live brand or
customer rows, so regenerating an issued PDF gives the same document. The brand preview
builds the same shape from unsaved form values (`sample_document`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import translation
from django.utils.translation import gettext_lazy as _

from config.types import JsonDict
from invoices.rendering import formatting
from invoices.rendering.fonts import font_for
from invoices.services.documents import legal_mentions, seller_in_language, seller_snapshot

DEFAULT_BRANDING: dict[str, Any] = {
    "layout": "classic",
    "font": "open-sans",
    "primary_colour": "#2851a3",
    "accent_colour": "#f0a202",
    "logo": "",
    "footer_text": "",
}
_CATEGORY_LABELS = {"AE": "AE", "O": "O", "E": "E", "Z": "Z", "K": "K", "G": "G"}


@dataclass
class DocumentLine:
    description: str
    period: str
    quantity: str
    unit_price: str
    tax_rate: str
    amount: str  # excluding tax, after the line's discount
    discount: str
    extra: list[str]


@dataclass
class DocumentData:
    kind: str  # "invoice" | "credit_note"
    number: str
    language: str
    currency: str
    issue_date: str
    due_date: str
    seller: dict[str, Any]
    buyer: dict[str, Any]
    branding: dict[str, Any]
    custom_fields: list[dict[str, str]]
    line_columns: list[dict[str, str]]
    lines: list[DocumentLine]
    totals: list[tuple[str, str, str]]  # (key, label key, formatted amount)
    tax_rows: list[dict[str, str]]
    mentions: list[str]
    discounts: list[dict[str, str]]
    amount_due: str
    memo: str = ""
    related_invoice: str = ""
    period: str = ""
    is_sample: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # What happened after issue (docs/invoices.md "Paid invoices"): "paid", "partly_paid" or
    # "" (nothing received since issue); the settlements as sentences in the document's
    # language; whether the transfer instructions still apply (something is still due).
    payment_status: str = ""
    paid_on: str = ""
    paid_by: str = ""
    settlements: list[str] = field(default_factory=list)
    show_payment_instructions: bool = True
    # Credit notes: where the money went, one sentence per allocation.
    allocations: list[str] = field(default_factory=list)
    # VAT exemption / reverse-charge reasons of the exempt groups (BT-120), as the XML carries them.
    exemptions: list[str] = field(default_factory=list)

    @property
    def font(self):
        return font_for(self.branding.get("font"))


@dataclass(frozen=True)
class Settlement:
    """One way money reached an invoice after it was issued (a succeeded payment), as the
    payment records say: amount, local date, method ("card", "sepa_debit", "bank_transfer",
    "cheque", "cash", "wallet", "other") and the card's or account's last four digits."""

    amount: int
    on: date | None
    method: str
    last4: str = ""
    card_brand: str = ""


_METHODS: dict[str, Any] = {
    "sepa_debit": _("SEPA Direct Debit"),
    "bank_transfer": _("bank transfer"),
    "cheque": _("cheque"),
    "cash": _("cash"),
    "other": _("another means of payment"),
    "customer_balance": _("customer balance"),
    "prepaid_credits": _("prepaid credits"),
}


def method_text(method: str, last4: str = "") -> str:
    """How it was paid, in words, in the active language: "card ending 4242", "SEPA Direct Debit"..."""
    if method in ("card", "wallet"):
        return str(_("card ending %(last4)s") % {"last4": last4}) if last4 else str(_("card"))
    if method == "sepa_debit" and last4:
        return str(_("SEPA Direct Debit (account ending %(last4)s)") % {"last4": last4})
    return str(_METHODS.get(method, _METHODS["other"]))


_CATEGORY_REASONS: dict[str, Any] = {
    "AE": _("Reverse charge"),
    "O": _("Not subject to VAT"),
    "E": _("Exempt from VAT"),
    "K": _("Intra-Community supply, exempt from VAT"),
    "G": _("Export outside the EU, exempt from VAT"),
}


def _exemptions(breakdown: Iterable[Mapping[str, Any]], *, has_vat_mention: bool) -> list[str]:
    """The reason of every group charged no VAT: the tax code's stored reason (BT-120, the
    same text the Factur-X XML carries), else the category's generic one unless a legal
    mention (reverse charge, export) already states it in full."""
    reasons: list[str] = []
    for group in breakdown:
        category = group.get("category")
        if category not in _CATEGORY_REASONS:
            continue
        text = group.get("exemption_reason") or ""
        code = group.get("exemption_reason_code") or ""
        if not text and has_vat_mention:
            continue
        line = str(
            _("VAT exemption (%(category)s): %(reason)s")
            % {
                "category": category,
                "reason": text or str(_CATEGORY_REASONS[category]),
            }
        )
        if code:
            line += f" – {code}"
        if line not in reasons:
            reasons.append(line)
    return reasons


def _branding(seller: Mapping[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_BRANDING, **(seller.get("branding") or {})}


def _line_amount(line: Any) -> int:
    net = line.amount - getattr(line, "discount_amount", 0)
    return net - line.tax_amount if getattr(line, "tax_inclusive", False) else net


def _tax_rows(breakdown: Iterable[Mapping[str, Any]], *, currency: str, language: str) -> list[dict[str, str]]:
    rows = []
    for group in breakdown:
        rows.append(
            {
                "category": group["category"],
                "rate": formatting.rate(group["rate"], language),
                "taxable": formatting.money(group["taxable_amount"], currency, language),
                "tax": formatting.money(group["tax_amount"], currency, language),
            }
        )
    return rows


def _lines(
    lines: Sequence[Any], *, columns: Sequence[Mapping[str, str]], currency: str, language: str, timezone: str
) -> list[DocumentLine]:
    shown = []
    for line in lines:
        net = _line_amount(line)
        quantity = Decimal(line.quantity or 1)
        discount = getattr(line, "discount_amount", 0)
        unit = Decimal(net + discount) / quantity if quantity else Decimal(net + discount)
        metadata = getattr(line, "metadata", None) or {}
        shown.append(
            DocumentLine(
                description=line.description,
                period=formatting.period(
                    getattr(line, "period_start", None),
                    getattr(line, "period_end", None),
                    timezone=timezone,
                    language=language,
                ),
                quantity=formatting.quantity(quantity, language),
                unit_price=formatting.money(int(unit.to_integral_value()), currency, language),
                tax_rate=formatting.rate(line.tax_rate, language),
                amount=formatting.money(net + discount, currency, language),
                discount=formatting.money(-discount, currency, language) if discount else "",
                extra=[str(metadata.get(column["key"], "")) for column in columns],
            )
        )
    return shown


def invoice_document(
    *, invoice: Any, lines: Sequence[Any], settlements: Sequence[Settlement] | None = None
) -> DocumentData:
    """An issued invoice as shown: its snapshot, stored lines and stored totals.

    `settlements` None: the invoice AS ISSUED (the stored original). A list (possibly
    empty): the invoice as it stands now, with what was received since issue (payments
    and, through `invoice.amount_remaining`, credit notes that reduced the amount due).
    """
    snapshot = invoice.issued_snapshot or {}
    seller, buyer = snapshot.get("seller", {}), snapshot.get("buyer", {})
    language = snapshot.get("language") or invoice.language or "fr"
    currency = invoice.currency
    timezone = seller.get("timezone") or "Europe/Paris"

    def money(amount: int) -> str:
        return formatting.money(amount, currency, language)

    totals = []
    if invoice.discount_total:
        # Lines show their amount before discount; the discounts follow the subtotal.
        totals.append(("subtotal", "subtotal", money(invoice.total_excluding_tax + invoice.discount_total)))
        for discount in snapshot.get("discounts", []):
            if discount.get("amount"):
                totals.append(("discount", discount.get("label", ""), money(-int(discount["amount"]))))
    totals.append(("total_excluding_tax", "total_excluding_tax", money(invoice.total_excluding_tax)))
    totals.append(("tax", "tax", money(invoice.tax_total)))
    totals.append(("total", "total", money(invoice.total)))
    if getattr(invoice, "credits_applied", 0):
        totals.append(("prepaid_credits", "prepaid_credits_applied", money(-invoice.credits_applied)))
    if invoice.starting_balance_applied:
        totals.append(("credit", "credit_applied", money(-invoice.starting_balance_applied)))
    columns = seller.get("line_columns") or []
    with translation.override(language):
        state = _payment_state(invoice=invoice, settlements=settlements, snapshot=snapshot, money=money)
    totals += state.pop("totals")
    exemptions = _translated(
        language, _exemptions, invoice.tax_breakdown or [], has_vat_mention=bool(snapshot.get("vat_mention"))
    )
    return DocumentData(
        kind="invoice",
        number=invoice.number or "",
        language=language,
        currency=currency,
        issue_date=formatting.long_date(snapshot.get("issue_date"), language),
        due_date=formatting.long_date(snapshot.get("due_date"), language),
        seller=seller,
        buyer=buyer,
        branding=_branding(seller),
        custom_fields=[*(seller.get("custom_fields") or []), *(buyer.get("custom_fields") or [])],
        line_columns=columns,
        lines=_lines(lines, columns=columns, currency=currency, language=language, timezone=timezone),
        totals=totals,
        tax_rows=_tax_rows(invoice.tax_breakdown or [], currency=currency, language=language),
        mentions=[mention["text"] for mention in snapshot.get("mentions", [])],
        discounts=[],
        amount_due=state.pop("amount_due"),
        memo=invoice.memo,
        period=formatting.period(invoice.period_start, invoice.period_end, timezone=timezone, language=language),
        exemptions=exemptions,
        **state,
    )


def _translated(language: str, build: Any, *args: Any, **kwargs: Any) -> Any:
    with translation.override(language):
        return build(*args, **kwargs)


def _payment_state(
    *, invoice: Any, settlements: Sequence[Settlement] | None, snapshot: Mapping[str, Any], money: Any
) -> dict[str, Any]:
    """Paid, partly paid or due: the totals rows after "Total incl. VAT", the sentences and
    the flags the templates read. Runs inside the document's language."""
    language = translation.get_language() or "fr"
    received = min(int(getattr(invoice, "amount_paid", 0) or 0), invoice.amount_due) if settlements is not None else 0
    credited = 0
    if settlements is not None:
        # Credit notes that reduced the amount due lower `amount_remaining` without a payment.
        remaining = int(getattr(invoice, "amount_remaining", invoice.amount_due - received))
        credited = max(invoice.amount_due - received - remaining, 0)
    due_now = max(invoice.amount_due - received - credited, 0)
    prepaid = [
        (method, amount)
        for method, amount in (
            ("prepaid_credits", getattr(invoice, "credits_applied", 0) or 0),
            ("customer_balance", invoice.starting_balance_applied or 0),
        )
        if amount
    ]
    sentences = [
        str(_("%(amount)s paid on %(date)s by %(method)s"))
        % {
            "amount": money(item.amount),
            "date": formatting.long_date(item.on, language) if item.on else "",
            "method": method_text(item.method, item.last4),
        }
        for item in settlements or []
    ]
    methods = list(dict.fromkeys([method_text(item.method, item.last4) for item in settlements or []]))
    methods += [method_text(method) for method, _amount in prepaid]
    if credited:
        methods.append(str(_("credit note")))
        sentences.append(str(_("%(amount)s deducted by credit note")) % {"amount": money(credited)})
    last = max((item.on for item in settlements or [] if item.on), default=None)
    paid_on = formatting.long_date(last or snapshot.get("issue_date"), language)
    totals: list[tuple[str, str, str]] = []
    if received:
        totals.append(("paid", str(_("Paid")) if not due_now else str(_("Paid so far")), money(-received)))
    if credited:
        totals.append(("credited", str(_("Credit notes")), money(-credited)))
    status = ""
    if due_now == 0 and getattr(invoice, "status", "") != "void":
        status = "paid"
    elif received or credited:
        status = "partly_paid"
    return {
        "totals": totals,
        "amount_due": money(due_now),
        "payment_status": status,
        "paid_on": paid_on if status == "paid" else "",
        "paid_by": ", ".join(methods) if status == "paid" else "",
        "settlements": sentences,
        "show_payment_instructions": due_now > 0,
    }


def credit_note_allocations(
    *, credit_note: Any, money: Any, language: str, refunded_to: Settlement | None = None
) -> list[str]:
    """Where the credited money went, from the amounts the credit note recorded at issue
    (and, for a refund, the payment the refund went back to)."""
    related = (credit_note.issued_snapshot or {}).get("invoice") or {}
    issue_date = formatting.long_date((credit_note.issued_snapshot or {}).get("issue_date"), language)
    sentences = []
    with translation.override(language):
        if credit_note.refunded:
            if refunded_to is not None:
                sentences.append(
                    str(_("%(amount)s refunded to %(method)s on %(date)s"))
                    % {
                        "amount": money(credit_note.refunded),
                        "method": method_text(refunded_to.method, refunded_to.last4),
                        "date": formatting.long_date(refunded_to.on, language) if refunded_to.on else issue_date,
                    }
                )
            else:
                sentences.append(
                    str(_("%(amount)s refunded on %(date)s"))
                    % {"amount": money(credit_note.refunded), "date": issue_date}
                )
        if credit_note.credited_to_balance:
            sentences.append(
                str(_("%(amount)s credited to the customer balance, used on the next invoices"))
                % {"amount": money(credit_note.credited_to_balance)}
            )
        if credit_note.reduced_amount_due:
            sentences.append(
                str(_("%(amount)s deducted from the amount due on invoice %(number)s"))
                % {"amount": money(credit_note.reduced_amount_due), "number": related.get("number", "")}
            )
    return sentences


def credit_note_document(
    *, credit_note: Any, lines: Sequence[Any], refunded_to: Settlement | None = None
) -> DocumentData:
    snapshot = credit_note.issued_snapshot or {}
    seller, buyer = snapshot.get("seller", {}), snapshot.get("buyer", {})
    language = snapshot.get("language") or "fr"
    currency = credit_note.currency
    timezone = seller.get("timezone") or "Europe/Paris"

    def money(amount: int) -> str:
        return formatting.money(amount, currency, language)

    related = snapshot.get("invoice", {})
    return DocumentData(
        kind="credit_note",
        number=credit_note.number,
        language=language,
        currency=currency,
        issue_date=formatting.long_date(snapshot.get("issue_date"), language),
        due_date="",
        seller=seller,
        buyer=buyer,
        branding=_branding(seller),
        custom_fields=[*(seller.get("custom_fields") or []), *(buyer.get("custom_fields") or [])],
        line_columns=[],
        lines=_lines(lines, columns=[], currency=currency, language=language, timezone=timezone),
        totals=[
            ("total_excluding_tax", "total_excluding_tax", money(credit_note.subtotal)),
            ("tax", "tax", money(credit_note.tax_total)),
            ("total", "total_credited", money(credit_note.total)),
        ],
        tax_rows=_tax_rows(credit_note.tax_breakdown or [], currency=currency, language=language),
        mentions=[mention["text"] for mention in snapshot.get("mentions", [])],
        discounts=[],
        amount_due=money(credit_note.total),
        memo=credit_note.memo,
        related_invoice=related.get("number", ""),
        show_payment_instructions=False,
        allocations=credit_note_allocations(
            credit_note=credit_note, money=money, language=language, refunded_to=refunded_to
        ),
        exemptions=_translated(
            language, _exemptions, credit_note.tax_breakdown or [], has_vat_mention=bool(snapshot.get("vat_mention"))
        ),
    )


# -- the brand preview's sample invoice ------------------------------------------------


@dataclass
class _SampleLine:
    description: str
    quantity: Decimal
    amount: int
    tax_rate: Decimal
    tax_amount: int
    tax_category: str = "S"
    discount_amount: int = 0
    tax_inclusive: bool = False
    period_start: datetime | None = None
    period_end: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _SampleInvoice:
    number: str
    language: str
    currency: str
    issued_snapshot: dict[str, Any]
    subtotal: int
    discount_total: int
    tax_total: int
    total_excluding_tax: int
    total: int
    starting_balance_applied: int
    amount_due: int
    tax_breakdown: list[dict[str, Any]]
    memo: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None


def sample_invoice(
    *,
    brand: Any,
    language: str | None = None,
    lines: int = 3,
    custom_fields: list[JsonDict] | None = None,
    line_columns: list[JsonDict] | None = None,
) -> tuple[_SampleInvoice, list[_SampleLine]]:
    """An in-memory issued invoice of `brand` (saved or not) and its lines: the shape the
    renderers and the Factur-X builder read, without a database row."""
    language = language or brand.default_language or "fr"
    seller = seller_in_language(
        seller_snapshot(brand, custom_fields=custom_fields, line_columns=line_columns), brand=brand, language=language
    )
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = datetime(2026, 4, 1, tzinfo=UTC)
    columns = seller.get("line_columns") or []
    sample_lines = []
    for index in range(lines):
        amount = [4900, 1500, 12000][index % 3]
        sample_lines.append(
            _SampleLine(
                description=["Plan Pro", "Extra seats", "Media monitoring"][index % 3]
                + (f" ({index + 1})" if index >= 3 else ""),
                quantity=Decimal([1, 3, 1][index % 3]),
                amount=amount,
                tax_rate=Decimal(20),
                tax_amount=amount // 5,
                period_start=start,
                period_end=end,
                metadata={column["key"]: 42 for column in columns},
            )
        )
    subtotal = sum(line.amount for line in sample_lines)
    tax = sum(line.tax_amount for line in sample_lines)
    due = start + timedelta(days=30)
    snapshot = {
        "seller": seller,
        "buyer": {
            "legal_name": "Client Exemple SARL",
            "email": "compta@client.example",
            "address_line1": "1 place du Capitole",
            "postal_code": "31000",
            "city": "Toulouse",
            "country": "FR",
            "vat_number": "FR40303265045",
            "siren": "303265045",
            "delivery_address": "",
            "custom_fields": [{"label": "PO number" if language == "en" else "N° de commande", "value": "PO-1234"}],
        },
        "language": language,
        "issue_date": start.date().isoformat(),
        "due_date": due.date().isoformat(),
        "mentions": legal_mentions(
            brand=brand,
            language=language,
            vat_mention_key=None,
            collection_method="send_invoice",
            days_until_due=30,
            due_date=due.date(),
        ),
    }
    invoice = _SampleInvoice(
        number="F-2026-000042",
        language=language,
        currency="EUR",
        issued_snapshot=snapshot,
        subtotal=subtotal,
        discount_total=0,
        tax_total=tax,
        total_excluding_tax=subtotal,
        total=subtotal + tax,
        starting_balance_applied=0,
        amount_due=subtotal + tax,
        tax_breakdown=[{"category": "S", "rate": "20", "taxable_amount": subtotal, "tax_amount": tax}],
        period_start=start,
        period_end=end,
    )
    return invoice, sample_lines


def sample_document(
    *,
    brand: Any,
    language: str | None = None,
    lines: int = 3,
    custom_fields: list[JsonDict] | None = None,
    line_columns: list[JsonDict] | None = None,
    logo_data_uri: str | None = None,
) -> DocumentData:
    """A sample invoice of `brand`, saved or not: the admin preview passes the unsaved
    form values, its inline custom fields and columns, and an uploaded logo as data URI."""
    invoice, sample_lines = sample_invoice(
        brand=brand, language=language, lines=lines, custom_fields=custom_fields, line_columns=line_columns
    )
    document = invoice_document(invoice=invoice, lines=sample_lines)
    document.is_sample = True
    if logo_data_uri:
        document.extra["logo_data_uri"] = logo_data_uri
    return document
