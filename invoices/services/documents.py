"""What an issued document freezes: seller and buyer identities, legal mentions, and a
content hash over the whole.

French invoices must show (Code de commerce L441-9, CGI article 242 nonies A): the
seller's and buyer's names and addresses, SIREN, VAT numbers, the seller's legal form,
share capital and RCS registration, the delivery address when it differs, the category
of the operation, the due date and payment terms, the late-payment penalty rate, the
fixed 40 EUR recovery indemnity, the early-payment discount terms (here: none), the VAT
option on debits when taken, and the VAT exemption / reverse-charge mention when no
VAT is charged. `issued_snapshot` holds all of it, in the document's language, so a
later edit of the brand or the customer never changes an issued invoice.

Everything here is pure Python over already loaded rows: the bulk issue path calls it
for thousands of invoices per transaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_date
from django.db.models import Q
from django.utils import translation
from django.utils.functional import Promise

from config.types import JsonDict, JsonMapping
from customers.models import Customer
from customers.selectors import customer_siren
from invoices.models import (
    Brand,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceCustomField,
    InvoiceLine,
    InvoiceLineColumn,
)
from invoices.vat import LEGAL_MENTIONS

DEFAULT_DAYS_UNTIL_DUE: Final = 30
SEND_INVOICE: Final = "send_invoice"
MENTION_LANGUAGES: Final = ("fr", "en")

# Fixed texts of the mentions, by language. The 40 EUR indemnity is set by article
# D441-5 of the Code de commerce; the penalty rate comes from the brand.
_TEXTS: Final[dict[str, dict[str, str]]] = {
    "fr": {
        "operation_category": "Catégorie de l'opération : {category}",
        "late_payment": "Pénalités de retard : {rate} (article L441-10 du Code de commerce)",
        "recovery_indemnity": "En cas de retard de paiement, indemnité forfaitaire pour frais de recouvrement "
        "de 40 € (article D441-5 du Code de commerce)",
        "early_payment": "Pas d'escompte pour paiement anticipé",
        "vat_on_debits": "Option pour le paiement de la taxe d'après les débits",
        "terms_send_invoice": "Paiement à {days} jours, date d'échéance : {due}",
        "terms_charge_automatically": "Paiement par prélèvement automatique à l'émission, date d'échéance : {due}",
        "credit_note_for": "Avoir se rapportant à la facture n° {number} du {date}",
    },
    "en": {
        "operation_category": "Type of transaction: {category}",
        "late_payment": "Late-payment penalties: {rate} (article L441-10 of the French Commercial Code)",
        "recovery_indemnity": "Fixed compensation for recovery costs in case of late payment: €40 "
        "(article D441-5 of the French Commercial Code)",
        "early_payment": "No discount for early payment",
        "vat_on_debits": "VAT payable on debits (option pour le paiement de la taxe d'après les débits)",
        "terms_send_invoice": "Payment within {days} days, due date: {due}",
        "terms_charge_automatically": "Paid by automatic debit on issue, due date: {due}",
        "credit_note_for": "Credit note for invoice {number} of {date}",
    },
}


# Category of the operation (mention of the 2026-2027 e-invoicing reform), by brand setting.
_OPERATION_CATEGORIES: Final[dict[str, dict[str, str]]] = {
    "fr": {"services": "Prestation de services", "goods": "Livraison de biens", "mixed": "Mixte (biens et services)"},
    "en": {
        "services": "supply of services (prestation de services)",
        "goods": "supply of goods (livraison de biens)",
        "mixed": "goods and services (mixte)",
    },
}


def document_language(language: str | None) -> str:
    return language if language in MENTION_LANGUAGES else "fr"


@lru_cache(maxsize=512)
def format_local_date(day: date, language: str) -> str:
    return format_date(day, format="long", locale=document_language(language))


def local_date(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


# Brand free texts kept per language (invoices/translation.py, django-modeltranslation).
TRANSLATED_BRAND_TEXTS: Final = ("footer_text", "payment_instructions", "late_payment_rate")
# The stock late-payment mention (the model's default, copied into every language column).
_STOCK_LATE_PAYMENT: Final = {"fr": "3 × le taux d'intérêt légal", "en": "3 × the French legal interest rate"}


def brand_text(brand: Brand, field: str, language: str) -> str:
    """A brand text in exactly this language: never the other language's value (an English
    invoice carries no French footer), except the legal late-payment mention, which must
    be printed: the stock text in its wording for this language, else the other value."""
    language = document_language(language)
    value = getattr(brand, f"{field}_{language}", None)
    if field != "late_payment_rate":
        return value or ""
    if value in _STOCK_LATE_PAYMENT.values():
        return _STOCK_LATE_PAYMENT[language]
    if not value:
        other = getattr(brand, f"{field}_{'fr' if language == 'en' else 'en'}", None) or ""
        return _STOCK_LATE_PAYMENT[language] if not other or other in _STOCK_LATE_PAYMENT.values() else other
    return value


def _labels(row: object) -> dict[str, str]:
    """A custom field's or line column's label in each document language (modeltranslation)."""
    return {language: getattr(row, f"label_{language}", "") or "" for language in ("fr", "en")}


def _label_in(item: JsonDict, language: str) -> JsonDict:
    """The item with its label in `language`: that language's label, else the one typed (a PO
    number's value still needs a label; finance fills both languages to avoid the fallback)."""
    labels = item.get("labels") or {}
    chosen = labels.get(language) or item.get("label", "")
    return {key: value for key, value in item.items() if key != "labels"} | {"label": chosen}


def seller_in_language(seller: JsonDict, *, brand: Brand, language: str) -> JsonDict:
    """The seller snapshot with the brand's texts, custom-field labels and line-column titles of
    the document's language."""
    language = document_language(language)
    return {
        **seller,
        "payment_instructions": brand_text(brand, "payment_instructions", language),
        "branding": {**(seller.get("branding") or {}), "footer_text": brand_text(brand, "footer_text", language)},
        "custom_fields": [_label_in(item, language) for item in seller.get("custom_fields") or []],
        "line_columns": [_label_in(item, language) for item in seller.get("line_columns") or []],
    }


def seller_snapshot(
    brand: Brand,
    *,
    custom_fields: list[JsonDict] | None = None,
    line_columns: list[JsonDict] | None = None,
) -> JsonDict:
    """The seller as issued. `custom_fields` / `line_columns` default to the brand's
    stored ones (two queries); the admin preview passes its unsaved values instead."""
    if custom_fields is None:
        custom_fields = [
            {"label": field.label, "labels": _labels(field), "value": field.value}
            for field in brand.custom_fields.all()
        ]
    if line_columns is None:
        line_columns = [
            {"key": column.metadata_key, "label": column.label, "labels": _labels(column)}
            for column in brand.line_columns.all()
        ]
    return {
        "name": brand.name,
        "legal_name": brand.legal_name,
        "legal_form": brand.legal_form,
        "address_line1": brand.address_line1,
        "address_line2": brand.address_line2,
        "postal_code": brand.postal_code,
        "city": brand.city,
        "country": str(brand.country),
        "siren": brand.siren,
        "siret": brand.siret,
        "vat_number": brand.vat_number,
        "share_capital": brand.share_capital,
        "rcs": brand.rcs,
        "email": brand.email,
        "website": brand.website,
        "iban": brand.iban,
        "bic": brand.bic,
        "payment_instructions": brand.payment_instructions,
        "vat_on_debits": brand.vat_on_debits,
        "operation_category": brand.operation_category,
        "timezone": brand.timezone,
        "default_language": brand.default_language,
        # How the documents look and what they show besides the law's mentions: frozen
        # too, so a regenerated PDF is identical (two queries per brand).
        "branding": {
            "layout": brand.layout,
            "font": brand.font,
            "primary_colour": brand.primary_colour,
            "accent_colour": brand.accent_colour,
            "logo": brand.logo.name if brand.logo else "",
            "footer_text": brand.footer_text,
        },
        "custom_fields": custom_fields,
        "line_columns": line_columns,
    }


def custom_fields_by_owner(
    *, brand_ids: Iterable[int], customer_ids: Iterable[int]
) -> tuple[dict[int, list[dict[str, str]]], dict[int, list[dict[str, str]]]]:
    """Invoice custom fields of many brands and customers in one query (the bulk path)."""
    by_brand: dict[int, list[dict[str, str]]] = {}
    by_customer: dict[int, list[dict[str, str]]] = {}
    rows = InvoiceCustomField.objects.filter(
        Q(brand_id__in=list(brand_ids)) | Q(customer_id__any_of=list(customer_ids))
    ).values_list("brand_id", "customer_id", "label", "value")
    for brand_id, customer_id, label, value in rows:
        owner = by_brand.setdefault(brand_id, []) if brand_id else by_customer.setdefault(customer_id, [])
        owner.append({"label": label, "value": value})
    return by_brand, by_customer


def line_columns_by_brand(*, brand_ids: Iterable[int]) -> dict[int, list[dict[str, str]]]:
    columns: dict[int, list[dict[str, str]]] = {}
    rows = InvoiceLineColumn.objects.filter(brand_id__in=list(brand_ids)).values_list(
        "brand_id", "metadata_key", "label"
    )
    for brand_id, key, label in rows:
        columns.setdefault(brand_id, []).append({"key": key, "label": label})
    return columns


def buyer_snapshot(customer: Customer, *, custom_fields: list[dict[str, str]] | None = None) -> JsonDict:
    # The VAT number is decrypted here: the law requires it printed on the invoice.
    # `custom_fields`: from `custom_fields_by_owner` when the caller loaded many; else one query.
    if custom_fields is None:
        custom_fields = custom_fields_by_owner(brand_ids=[], customer_ids=[customer.pk])[1].get(customer.pk, [])
    return {
        "legal_name": customer.legal_name,
        "email": customer.invoice_email or customer.email,
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "postal_code": customer.postal_code,
        "city": customer.city,
        "region": customer.region,
        "country": str(customer.country),
        "vat_number": customer.tax_id or "",
        # The typed SIREN, else the one a French VAT number carries (e-invoicing, BT-47).
        "siren": customer_siren(customer=customer),
        "is_business": customer.is_business,
        "delivery_address": customer.delivery_address,
        "custom_fields": custom_fields,
    }


def legal_mentions(
    *,
    brand: Brand,
    language: str,
    vat_mention_key: str | None,
    collection_method: str,
    days_until_due: int,
    due_date: date,
) -> list[dict[str, str]]:
    """The mentions French law requires, in order, as ``{"key", "text"}`` items."""
    language = document_language(language)
    texts = _TEXTS[language]
    due = format_local_date(due_date, language)
    categories = _OPERATION_CATEGORIES[language]
    category = categories.get(getattr(brand, "operation_category", "services"), categories["services"])
    mentions = [{"key": "operation_category", "text": texts["operation_category"].format(category=category)}]
    if collection_method == SEND_INVOICE:
        terms = texts["terms_send_invoice"].format(days=days_until_due, due=due)
    else:
        terms = texts["terms_charge_automatically"].format(due=due)
    mentions.append({"key": "payment_terms", "text": terms})
    mentions += payment_mentions(brand=brand, language=language)
    if vat_mention_key:
        mentions.append({"key": vat_mention_key, "text": LEGAL_MENTIONS[vat_mention_key][language]})
    if brand.vat_on_debits:
        mentions.append({"key": "vat_on_debits", "text": texts["vat_on_debits"]})
    return mentions


# The payment mentions (French Commercial Code L441-10; notes PMD, PMT, AAB of the e-invoice),
# which the French CIUS asks of every document, credit notes included (BR-FR-05).
PAYMENT_MENTION_KEYS: Final = ("late_payment", "recovery_indemnity", "early_payment")


def payment_mentions(*, brand: Brand, language: str) -> list[dict[str, str]]:
    """Late-payment penalties, the recovery indemnity and the early-payment discount, in order."""
    language = document_language(language)
    texts = _TEXTS[language]
    return [
        {
            "key": "late_payment",
            "text": texts["late_payment"].format(rate=brand_text(brand, "late_payment_rate", language)),
        },
        {"key": "recovery_indemnity", "text": texts["recovery_indemnity"]},
        {"key": "early_payment", "text": texts["early_payment"]},
    ]


def credit_note_payment_mentions(*, invoice_snapshot: JsonMapping, brand: Brand, language: str) -> list[dict[str, str]]:
    """A credit note's payment mentions: the corrected invoice's as it issued them (its rate,
    its language), each missing one in today's words (invoices issued before a mention existed)."""
    issued = {m.get("key"): m for m in invoice_snapshot.get("mentions") or [] if isinstance(m, dict)}
    current = {m["key"]: m for m in payment_mentions(brand=brand, language=language)}
    return [dict(issued.get(key) or current[key]) for key in PAYMENT_MENTION_KEYS]


def credit_note_reference(*, invoice_number: str, invoice_date: date, language: str) -> dict[str, str]:
    language = document_language(language)
    text = _TEXTS[language]["credit_note_for"].format(
        number=invoice_number, date=format_local_date(invoice_date, language)
    )
    return {"key": "credit_note_for", "text": text}


# -- content hash --------------------------------------------------------------------

_SIX_PLACES: Final = Decimal("0.000001")
_THREE_PLACES: Final = Decimal("0.001")


@lru_cache(maxsize=4096)
def _quantized(value: Decimal | int, places: Decimal) -> str:
    # As the database stores it (DecimalField quantizes with the default half-even context).
    return format(Decimal(value).quantize(places), "f")


def _decimal(value: Decimal | int | None, places: Decimal) -> str | None:
    return None if value is None else _quantized(value, places)


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def invoice_line_hash_row(line: InvoiceLine) -> list[object]:
    """An InvoiceLine (saved or not) as plain values, the same either way."""
    return [
        line.position,
        line.kind,
        line.description,
        _decimal(line.quantity, _SIX_PLACES),
        _decimal(line.unit_amount, _SIX_PLACES),
        line.amount,
        line.discount_amount,
        _decimal(line.tax_rate, _THREE_PLACES),
        line.tax_category,
        line.tax_inclusive,
        line.tax_amount,
        _moment(line.period_start),
        _moment(line.period_end),
    ]


def credit_note_line_hash_row(line: CreditNoteLine) -> list[object]:
    return [
        line.invoice_line_id,
        line.description,
        _decimal(line.quantity, _SIX_PLACES),
        line.amount,
        _decimal(line.tax_rate, _THREE_PLACES),
        line.tax_category,
        line.tax_amount,
    ]


def canonical_json(value: object) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the same text for the same content."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_hash(payload: JsonMapping, *, snapshot_json: str) -> str:
    """sha256 of the canonical JSON of `payload`, a newline, and that of the snapshot."""
    return hashlib.sha256(f"{canonical_json(payload)}\n{snapshot_json}".encode()).hexdigest()


def _invoice_hash_payload(*, invoice: Invoice, lines: Iterable[InvoiceLine], number: str | None) -> JsonDict:
    return {
        "number": number,
        "currency": invoice.currency,
        "finalized_at": _moment(invoice.finalized_at),
        "totals": [
            invoice.subtotal,
            invoice.discount_total,
            invoice.tax_total,
            invoice.total_excluding_tax,
            invoice.total,
            invoice.starting_balance_applied,
            invoice.amount_due,
            # Prepaid credits (issue 16) only when used: hashes of earlier invoices stay as they were.
            *([invoice.credits_applied] if invoice.credits_applied else []),
        ],
        "tax_breakdown": invoice.tax_breakdown,
        "lines": [invoice_line_hash_row(line) for line in lines],
    }


def invoice_content_hash(*, invoice: Invoice, lines: Iterable[InvoiceLine], snapshot_json: str | None = None) -> str:
    """sha256 over the number, amounts, lines and snapshot of an invoice (saved or not).

    `snapshot_json`: `canonical_json(invoice.issued_snapshot)` when the caller has it
    already (the bulk path stores that same text).
    """
    return canonical_hash(
        _invoice_hash_payload(invoice=invoice, lines=lines, number=invoice.number),
        snapshot_json=snapshot_json if snapshot_json is not None else canonical_json(invoice.issued_snapshot),
    )


# Stands for the number in a content hash prepared before the number is known: random per
# process, so no description or mention can contain it.
_NUMBER_SLOT: Final = f"number-slot-{secrets.token_hex(16)}"


class InvoiceContentHasher:
    """`invoice_content_hash` of an invoice whose number is not known yet: everything but the
    number is serialized now (outside the number-sequence lock), and `for_number` finishes the
    sha256 with the number (under it): a few microseconds instead of serializing the lines again.
    Gives exactly `invoice_content_hash` once the invoice carries that number."""

    __slots__ = ("_head", "_tail")

    def __init__(self, *, invoice: Invoice, lines: Iterable[InvoiceLine], snapshot_json: str) -> None:
        text = canonical_json(_invoice_hash_payload(invoice=invoice, lines=lines, number=_NUMBER_SLOT))
        head, slot, tail = text.partition(canonical_json(_NUMBER_SLOT))
        assert slot and _NUMBER_SLOT not in tail, "the number slot must occur exactly once"
        self._head = hashlib.sha256(head.encode())
        self._tail = f"{tail}\n{snapshot_json}".encode()

    def for_number(self, number: str) -> str:
        digest = self._head.copy()
        digest.update(canonical_json(number).encode())
        digest.update(self._tail)
        return digest.hexdigest()


def credit_note_content_hash(*, credit_note: CreditNote, lines: Iterable[CreditNoteLine]) -> str:
    return canonical_hash(
        {
            "number": credit_note.number,
            "invoice_id": credit_note.invoice_id,
            "currency": credit_note.currency,
            "issued_at": _moment(credit_note.issued_at),
            "totals": [
                credit_note.subtotal,
                credit_note.tax_total,
                credit_note.total,
                credit_note.reduced_amount_due,
                credit_note.credited_to_balance,
                credit_note.refunded,
            ],
            "tax_breakdown": credit_note.tax_breakdown,
            "lines": [credit_note_line_hash_row(line) for line in lines],
        },
        snapshot_json=canonical_json(credit_note.issued_snapshot),
    )


def document_text(language: str, message: str | Promise, **values: object) -> str:
    """A lazily translated message rendered in a document's language (ledger lines, credit lines)."""
    with translation.override(document_language(language)):
        return str(message) % values
