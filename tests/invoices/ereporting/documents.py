"""Issued documents written straight to the tables (the Hypothesis test and the benchmark):
consistent headers and tax breakdowns, as finalization stores them, without the engine's cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing.models import Payment, Refund
from invoices.models import CreditNote, Invoice

BUYERS = {
    "b2c": {"country": "FR", "is_business": False, "siren": "", "vat_number": ""},
    "international": {"country": "DE", "is_business": True, "siren": "", "vat_number": "DE136695976"},
    "einvoiced": {"country": "FR", "is_business": True, "siren": "303265045", "vat_number": ""},
}


@dataclass(frozen=True)
class Doc:
    buyer: str  # a BUYERS key
    day: date
    groups: tuple[tuple[str, str, int], ...]  # (category, rate, taxable amount)
    credit_note: bool = False
    currency: str = "EUR"


def tax_of(taxable: int, rate: str) -> int:
    return int((Decimal(taxable) * Decimal(rate) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def snapshot(*, buyer: str, day: date, seller: dict) -> dict:
    return {"buyer": dict(BUYERS[buyer]), "seller": seller, "issue_date": day.isoformat()}


def breakdown(groups) -> list[dict]:
    return [
        {
            "category": category,
            "rate": rate,
            "inclusive": False,
            "taxable_amount": taxable,
            "tax_amount": tax_of(taxable, rate),
        }
        for category, rate, taxable in groups
    ]


def moment(day: date) -> datetime:
    return datetime.combine(day, time(10), tzinfo=UTC)  # 11:00 or 12:00 in Paris: the same day


def write_documents(*, brand, customers: dict, docs, prefix: str, seller: dict | None = None) -> list[Invoice]:
    """Insert `docs` for `brand` (customers: buyer kind -> Customer). A credit note credits the
    last invoice written before it (an invoice is written for it if there is none)."""
    seller = seller or {"operation_category": "services", "vat_on_debits": False}
    invoices: list[Invoice] = []
    notes: list[CreditNote] = []
    last_invoice: dict[str, Invoice] = {}
    for index, doc in enumerate(docs):
        rows = breakdown(doc.groups)
        excluding = sum(row["taxable_amount"] for row in rows)
        tax = sum(row["tax_amount"] for row in rows)
        common = {
            "brand": brand,
            "customer": customers[doc.buyer],
            "currency": doc.currency,
            "tax_breakdown": rows,
            "issued_snapshot": snapshot(buyer=doc.buyer, day=doc.day, seller=seller),
        }
        if doc.credit_note:
            invoice = last_invoice.get((doc.buyer, doc.currency))
            if invoice is None:
                invoice = Invoice.objects.create(
                    number=f"{prefix}-B{index}",
                    status="open",
                    finalized_at=moment(doc.day) - timedelta(days=400),
                    **{**common, "tax_breakdown": []},
                )
            notes.append(
                CreditNote(
                    invoice=invoice,
                    number=f"{prefix}-C{index}",
                    subtotal=excluding,
                    tax_total=tax,
                    total=max(excluding + tax, 1),
                    reduced_amount_due=max(excluding + tax, 1),
                    issued_at=moment(doc.day),
                    **common,
                )
            )
        else:
            invoice = Invoice(
                number=f"{prefix}-I{index}",
                status="open",
                finalized_at=moment(doc.day),
                subtotal=excluding,
                total_excluding_tax=excluding,
                tax_total=tax,
                total=excluding + tax,
                amount_due=excluding + tax,
                amount_remaining=excluding + tax,
                **common,
            )
            invoice.save()
            invoices.append(invoice)
            last_invoice[(doc.buyer, doc.currency)] = invoice
    CreditNote.objects.bulk_create(notes)
    return invoices


def write_payment(*, invoice: Invoice, amount: int, day: date) -> Payment:
    return Payment.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        method="bank_transfer",
        gateway="manual",
        status="succeeded",
        amount=amount,
        currency=invoice.currency,
        attempted_at=moment(day),
        settled_at=moment(day),
    )


def write_refund(*, payment: Payment, amount: int, day: date) -> Refund:
    """An executed refund of `payment` (the gateway's and the credit note's side are not needed here)."""
    Payment.objects.filter(pk=payment.pk).update(amount_refunded=payment.amount_refunded + amount)
    payment.amount_refunded += amount
    return Refund.objects.create(
        payment=payment,
        invoice=payment.invoice,
        status=Refund.Status.EXECUTED,
        amount=amount,
        currency=payment.currency,
        reason="requested_by_customer",
        requested_at=moment(day),
        executed_at=moment(day),
    )
