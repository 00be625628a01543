"""Hand-posted ledger entries for the export, VAT-summary and console tests (accexport)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoices.ledger.models import JournalEntry, Role
from invoices.ledger.services import AccountKey, EntryDraft, entries_post


def post_sale(
    *,
    brand,
    customer,
    day: date,
    number: str,
    lines: list[tuple[int, str, Decimal, int]],
    livemode: bool = True,
    source_id: int,
    currency: str = "EUR",
) -> JournalEntry:
    """An invoice-like entry: D 411 total / C 706 net per line / C VAT per rate.

    `lines`: (net, VAT category, rate, VAT amount); a negative net makes a credit note."""
    credit_note = sum(net + vat for net, _c, _r, vat in lines) < 0
    draft = EntryDraft(
        brand_id=brand.pk,
        livemode=livemode,
        journal="VT",
        day=day,
        label=f"{'Credit note' if credit_note else 'Invoice'} {number}",
        source_type="credit_note" if credit_note else "invoice",
        source_id=source_id,
        movement="credit_note_issued" if credit_note else "invoice_finalized",
        currency=currency,
        customer_id=customer.pk,
        document_number=number,
        document_date=day,
    )
    draft.add(AccountKey(Role.RECEIVABLE), sum(net + vat for net, _c, _r, vat in lines), side="debit")
    for net, category, rate, vat in lines:
        draft.add(AccountKey(Role.REVENUE_SERVICES), net, side="credit", tax_rate=rate, tax_category=category)
        if vat:
            draft.add(AccountKey(Role.VAT_COLLECTED, vat_rate=rate), vat, side="credit", tax_rate=rate)
    return entries_post(drafts=[draft])[0]


def post_payment(*, brand, customer, day: date, amount: int, source_id: int, livemode: bool = True) -> JournalEntry:
    draft = EntryDraft(
        brand_id=brand.pk,
        livemode=livemode,
        journal="BQ",
        day=day,
        label="Payment",
        source_type="payment",
        source_id=source_id,
        movement="payment_succeeded",
        currency="EUR",
        customer_id=customer.pk,
    )
    draft.add(AccountKey(Role.BANK), amount, side="debit")
    draft.add(AccountKey(Role.RECEIVABLE), amount, side="credit")
    return entries_post(drafts=[draft])[0]
