"""Foreign-currency receivables at their historical rate (issue 19 item 7, docs/accounting.md
"Exchange differences").

An invoice in another currency than the brand's functional one puts its receivable on 411 at
the rate of its date: `amount` document units worth `functional` functional units. Whatever
later moves that receivable (payment, refund, credit note, write-off) moves it at that same
historical rate, so 411 always holds the open receivables at their historical rates; the
money side of a payment or refund is converted at the rate of its own day, and the
difference is an exchange gain or loss (services: `EntryDraft.fx_difference`).

Rounding is cumulative: after each movement the invoice's functional balance on 411 is
`round(open × functional / amount)`, read back from the ledger, so partial movements never
drift and the last one clears the receivable to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from django.apps import apps
from django.db.models import Q, Sum

from config.money import round_fraction
from invoices.ledger.models import AccountMapping, JournalEntry, JournalLine, Role


@dataclass(frozen=True)
class HistoricalReceivable:
    """An invoice's receivable as the ledger carries it (document and functional units)."""

    amount: int  # what the invoice put on 411
    functional: int  # ... in the functional currency at the invoice's rate
    rate: Decimal  # the invoice entry's rate
    open_amount: int  # on 411 now, for this invoice
    open_functional: int

    def at_historical_rate(self, amount: int) -> int:
        """`amount` document units of this receivable in functional units (cumulative rounding)."""
        return round_fraction(Fraction(amount * self.functional, self.amount))

    def settle(self, amount: int) -> tuple[int, HistoricalReceivable]:
        """The functional value of `amount` leaving 411 (negative: coming back), and what is left."""
        open_after = self.open_amount - amount
        value = self.open_functional - self.at_historical_rate(open_after)
        left = HistoricalReceivable(
            amount=self.amount,
            functional=self.functional,
            rate=self.rate,
            open_amount=open_after,
            open_functional=self.open_functional - value,
        )
        return value, left


def _invoice_sources(invoice_id: int) -> Q:
    """The entries that move this invoice's receivable: its own, its payments, refunds, credit notes."""
    sources = Q(entry__source_type="invoice", entry__source_id=invoice_id)
    for source_type, model in (
        ("payment", "billing.Payment"),
        ("refund", "billing.Refund"),
        ("credit_note", "invoices.CreditNote"),
    ):
        documents = apps.get_model(model).objects.filter(invoice_id=invoice_id).values("pk")
        sources |= Q(entry__source_type=source_type, entry__source_id__in=documents)
    return sources


def historical_receivable(*, invoice_id: int) -> HistoricalReceivable | None:
    """The foreign-currency receivable of an invoice, or None when there is no exchange to track
    (functional-currency invoice, not posted, posted without a rate, nothing on 411)."""
    entry = (
        JournalEntry.objects.filter(source_type="invoice", source_id=invoice_id, movement="invoice_finalized")
        .only("pk", "brand_id", "currency", "functional_currency", "rate")
        .first()
    )
    if entry is None or entry.currency == entry.functional_currency or not entry.rate:
        return None
    receivables = AccountMapping.objects.filter(brand_id=entry.brand_id, role=Role.RECEIVABLE).values("account_id")
    own = entry.lines.filter(account_id__in=receivables).aggregate(
        d=Sum("debit"), c=Sum("credit"), fd=Sum("functional_debit"), fc=Sum("functional_credit")
    )
    amount = (own["d"] or 0) - (own["c"] or 0)
    if amount <= 0:
        return None
    now = JournalLine.objects.filter(_invoice_sources(invoice_id), account_id__in=receivables).aggregate(
        d=Sum("debit"), c=Sum("credit"), fd=Sum("functional_debit"), fc=Sum("functional_credit")
    )
    return HistoricalReceivable(
        amount=amount,
        functional=(own["fd"] or 0) - (own["fc"] or 0),
        rate=entry.rate,
        open_amount=(now["d"] or 0) - (now["c"] or 0),
        open_functional=(now["fd"] or 0) - (now["fc"] or 0),
    )
