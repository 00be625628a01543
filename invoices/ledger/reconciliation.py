"""Ledger ↔ invoices ↔ payments ↔ bank statements for a period (the console's Reconciliation
page): each row puts what the ledger holds next to what the source documents say, in the
functional currency; a difference other than zero is what finance investigates.

Compared in the functional currency, on documents in that currency (a foreign-currency
document's ledger amount depends on the day's rate; those are listed by the journal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.apps import apps
from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from invoices.ledger.models import AccountMapping, JournalLine, Role
from invoices.models import Brand, CreditNote, Invoice


@dataclass(frozen=True)
class ReconciliationRow:
    key: str
    label: str
    source_label: str
    ledger: int
    source: int

    @property
    def difference(self) -> int:
        return self.ledger - self.source

    @property
    def reconciled(self) -> bool:
        return self.difference == 0


@dataclass(frozen=True)
class Reconciliation:
    currency: str
    rows: tuple[ReconciliationRow, ...]

    @property
    def reconciled(self) -> bool:
        return all(row.reconciled for row in self.rows)


def _accounts(brand: Brand, *roles: str) -> list[int]:
    return list(AccountMapping.objects.filter(brand=brand, role__in=roles).values_list("account_id", flat=True))


def _ledger(
    *, brand: Brand, livemode: bool, start: date, end: date, currency: str, source_type: str, accounts: list[int]
) -> int:
    """Net debit (debit minus credit) of the source's entries on these accounts."""
    totals = JournalLine.objects.filter(
        entry__brand=brand,
        entry__livemode=livemode,
        entry__date__range=(start, end),
        entry__currency=currency,
        entry__source_type=source_type,
        account_id__in=accounts,
    ).aggregate(debit=Sum("debit"), credit=Sum("credit"))
    return (totals["debit"] or 0) - (totals["credit"] or 0)


def ledger_reconciliation(*, brand: Brand, livemode: bool, start: date, end: date) -> Reconciliation:
    currency = getattr(getattr(brand, "ledger_settings", None), "functional_currency", "EUR")
    zone = ZoneInfo(brand.timezone or "UTC")
    since = datetime.combine(start, time.min, tzinfo=zone)
    until = datetime.combine(end, time.max, tzinfo=zone)
    customer_side = _accounts(brand, Role.RECEIVABLE, Role.ADVANCES, Role.PREPAID_CREDITS, Role.BAD_DEBTS)
    money_side = _accounts(brand, Role.BANK, Role.CLEARING)

    def ledger(source_type: str, accounts: list[int]) -> int:
        return _ledger(
            brand=brand,
            livemode=livemode,
            start=start,
            end=end,
            currency=currency,
            source_type=source_type,
            accounts=accounts,
        )

    invoices = Invoice.objects.filter(
        brand=brand, customer__livemode=livemode, currency=currency, finalized_at__range=(since, until)
    ).exclude(number="")
    invoiced = invoices.aggregate(total=Sum("total"))["total"] or 0
    credit_notes = CreditNote.objects.filter(
        invoice__brand=brand, customer__livemode=livemode, invoice__currency=currency, issued_at__range=(since, until)
    )
    credited = credit_notes.aggregate(total=Sum("total"))["total"] or 0

    Payment = apps.get_model("billing", "Payment")
    payments = Payment.objects.filter(
        invoice__brand=brand,
        customer__livemode=livemode,
        currency=currency,
        status="succeeded",
        settled_at__range=(since, until),
    )
    paid = payments.aggregate(total=Sum("amount"))["total"] or 0
    Refund = apps.get_model("billing", "Refund")
    refunded = (
        Refund.objects.filter(
            payment__invoice__brand=brand,
            payment__customer__livemode=livemode,
            currency=currency,
            status="executed",
            executed_at__range=(since, until),
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    StatementLine = apps.get_model("billing", "BankStatementLine")
    banked = (
        StatementLine.objects.filter(
            booking_date__range=(start, end),
            currency=currency,
            payments__invoice__brand=brand,
            payments__customer__livemode=livemode,
        )
        .distinct()
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    ledger_bank = ledger("payment", money_side)
    rows = (
        ReconciliationRow(
            key="invoices",
            label=str(_("Receivables from invoices")),
            source_label=str(_("Invoices issued")),
            ledger=ledger("invoice", customer_side),
            source=invoiced,
        ),
        ReconciliationRow(
            key="credit_notes",
            label=str(_("Receivables reduced by credit notes")),
            source_label=str(_("Credit notes issued")),
            ledger=-ledger("credit_note", customer_side),
            source=credited,
        ),
        ReconciliationRow(
            key="payments",
            label=str(_("Receivables settled by payments")),
            source_label=str(_("Payments received")),
            ledger=-ledger("payment", customer_side),
            source=paid,
        ),
        ReconciliationRow(
            key="refunds",
            label=str(_("Money sent back (bank and clearing)")),
            source_label=str(_("Refunds")),
            ledger=-ledger("refund", money_side),
            source=refunded,
        ),
        ReconciliationRow(
            key="bank",
            label=str(_("Payments into bank and clearing accounts")),
            source_label=str(_("Bank statement lines matched to payments")),
            ledger=ledger_bank,
            source=banked,
        ),
    )
    return Reconciliation(currency=currency, rows=rows)
