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
from django.db.models import Q, Sum
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
    # (key, ledger label, source label, ledger amount, source amount): one row each
    compared = (
        ("invoices", _("Receivables from invoices"), _("Invoices issued"), ledger("invoice", customer_side), invoiced),
        (
            "credit_notes",
            _("Receivables reduced by credit notes"),
            _("Credit notes issued"),
            -ledger("credit_note", customer_side),
            credited,
        ),
        (
            "payments",
            _("Receivables settled by payments"),
            _("Payments received"),
            -ledger("payment", customer_side),
            paid,
        ),
        ("refunds", _("Money sent back (bank and clearing)"), _("Refunds"), -ledger("refund", money_side), refunded),
        (
            "bank",
            _("Payments into bank and clearing accounts"),
            _("Bank statement lines matched to payments"),
            ledger("payment", money_side),
            banked,
        ),
    )
    rows = tuple(
        ReconciliationRow(key=key, label=str(label), source_label=str(source_label), ledger=amount, source=source)
        for key, label, source_label, amount, source in compared
    )
    return Reconciliation(currency=currency, rows=rows)


# -- bank account ↔ bank statements ----------------------------------------------------------------


class BankDifferenceKind:
    UNMATCHED_LINE = "unmatched_line"
    PAYMENT_WITHOUT_LINE = "payment_without_line"
    AMOUNT_MISMATCH = "amount_mismatch"
    NOT_POSTED = "not_posted"


BANK_DIFFERENCE_LABELS = {
    BankDifferenceKind.UNMATCHED_LINE: _("Statement line matched to no payment"),
    BankDifferenceKind.PAYMENT_WITHOUT_LINE: _("Payment with no statement line"),
    BankDifferenceKind.AMOUNT_MISMATCH: _("Statement line and its payments differ"),
    BankDifferenceKind.NOT_POSTED: _("Payment not posted on the bank account"),
}


@dataclass(frozen=True)
class BankDifference:
    """One thing the bank statement and the books disagree on, with what to open to fix it."""

    kind: str
    day: date
    currency: str
    statement_amount: int  # what the bank says (0: no statement line)
    books_amount: int  # what Tarif's payments and ledger say (0: nothing in the books)
    statement_line_id: int | None = None
    payment_id: int | None = None
    entry_id: int | None = None

    @property
    def difference(self) -> int:
        return self.statement_amount - self.books_amount

    @property
    def label(self) -> str:
        return str(BANK_DIFFERENCE_LABELS[self.kind])


@dataclass(frozen=True)
class BankReconciliation:
    """Receipts on the bank account (512) in the ledger against the imported statement lines."""

    currency: str
    ledger_receipts: int  # D 512 of payments and bank transfers credited to a balance, in the period
    statement_receipts: int  # statement credits of the period (ignored lines left out)
    differences: tuple[BankDifference, ...]

    @property
    def difference(self) -> int:
        return self.statement_receipts - self.ledger_receipts

    @property
    def reconciled(self) -> bool:
        return not self.differences and self.difference == 0


def _bank_entries(*, brand: Brand, livemode: bool, bank_accounts: list[int]) -> dict[tuple[str, int], tuple[int, int]]:
    """(source type, id) -> (entry id, D 512) of the entries that put money on the bank account."""
    rows = (
        JournalLine.objects.filter(
            entry__brand=brand,
            entry__livemode=livemode,
            entry__source_type__in=("payment", "balance_transaction"),
            entry__movement__in=("payment_succeeded", "balance_overpayment"),
            account_id__in=bank_accounts,
        )
        .values("entry__source_type", "entry__source_id", "entry_id")
        .annotate(debit=Sum("debit"))
    )
    return {(row["entry__source_type"], row["entry__source_id"]): (row["entry_id"], row["debit"]) for row in rows}


def _line_differences(line: object, posted: dict[tuple[str, int], tuple[int, int]]) -> list[BankDifference]:
    """What one statement line disagrees on: matched to nothing, its payments' total, unposted payments."""
    payments = [payment for payment in line.payments.all() if payment.status == "succeeded"]  # type: ignore[attr-defined]
    amount = line.amount  # type: ignore[attr-defined]
    credited = line.amount_credited  # type: ignore[attr-defined]

    def flag(kind: str, statement_amount: int, books_amount: int, payment_id: int | None = None) -> BankDifference:
        return BankDifference(
            kind=kind,
            day=line.booking_date,  # type: ignore[attr-defined]
            currency=line.currency,  # type: ignore[attr-defined]
            statement_amount=statement_amount,
            books_amount=books_amount,
            statement_line_id=line.pk,  # type: ignore[attr-defined]
            payment_id=payment_id,
        )

    if not payments and not credited:
        return [flag(BankDifferenceKind.UNMATCHED_LINE, amount, 0)]
    explained = sum(payment.amount for payment in payments) + credited
    found = []
    if explained != amount:
        found.append(flag(BankDifferenceKind.AMOUNT_MISMATCH, amount, explained, payments[0].pk if payments else None))
    found += [
        flag(BankDifferenceKind.NOT_POSTED, payment.amount, 0, payment.pk)
        for payment in payments
        if ("payment", payment.pk) not in posted
    ]
    return found


def bank_reconciliation(*, brand: Brand, livemode: bool, start: date, end: date) -> BankReconciliation:
    """Statement lines of the period ↔ payments into the bank ↔ the ledger's bank account.

    Each statement line (its booking date in the period) should be explained by the payments it
    was matched to plus what it credited to a balance, each of them posted on the bank account;
    each payment into the bank (manual methods: transfer, cheque, cash; settled in the period)
    should have a statement line. Statement lines belong to the brand through their customer or
    their payments; an unmatched line with no customer is shown to every brand (live mode only:
    bank statements are real money).
    """
    currency = getattr(getattr(brand, "ledger_settings", None), "functional_currency", "EUR")
    zone = ZoneInfo(brand.timezone or "UTC")
    since = datetime.combine(start, time.min, tzinfo=zone)
    until = datetime.combine(end, time.max, tzinfo=zone)
    bank_accounts = _accounts(brand, Role.BANK)
    posted = _bank_entries(brand=brand, livemode=livemode, bank_accounts=bank_accounts)
    StatementLine = apps.get_model("billing", "BankStatementLine")
    Payment = apps.get_model("billing", "Payment")
    ours = Q(customer__brand=brand, customer__livemode=livemode) | Q(
        payments__invoice__brand=brand, payments__customer__livemode=livemode
    )
    if livemode:
        ours |= Q(customer__isnull=True, payments__isnull=True)
    lines = (
        StatementLine.objects.filter(ours, booking_date__range=(start, end))
        .exclude(status="ignored")
        .distinct()
        .prefetch_related("payments")
        .order_by("booking_date", "pk")
    )
    differences: list[BankDifference] = []
    statement_receipts = 0
    for line in lines:
        if line.currency == currency:
            statement_receipts += line.amount
        differences.extend(_line_differences(line, posted))
    unbanked = (
        Payment.objects.filter(
            invoice__brand=brand,
            customer__livemode=livemode,
            gateway="manual",
            status="succeeded",
            settled_at__range=(since, until),
            bank_statement_lines__isnull=True,
        )
        .select_related("invoice")
        .order_by("settled_at", "pk")
    )
    for payment in unbanked:
        entry_id = posted.get(("payment", payment.pk), (None, 0))[0]
        differences.append(
            BankDifference(
                kind=BankDifferenceKind.PAYMENT_WITHOUT_LINE,
                day=payment.settled_at.astimezone(zone).date(),
                currency=payment.currency,
                statement_amount=0,
                books_amount=payment.amount,
                payment_id=payment.pk,
                entry_id=entry_id,
            )
        )
    ledger_receipts = (
        JournalLine.objects.filter(
            entry__brand=brand,
            entry__livemode=livemode,
            entry__currency=currency,
            entry__date__range=(start, end),
            entry__movement__in=("payment_succeeded", "balance_overpayment"),
            account_id__in=bank_accounts,
        ).aggregate(total=Sum("debit"))["total"]
        or 0
    )
    return BankReconciliation(
        currency=currency,
        ledger_receipts=ledger_receipts,
        statement_receipts=statement_receipts,
        differences=tuple(differences),
    )
