"""Reading the ledger back in tests: balances per account code, the lines of one movement."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Sum

from invoices.ledger.models import JournalEntry, JournalLine


def balances(brand, *, livemode: bool = True, currency: str | None = None) -> dict[str, int]:
    """Debit minus credit per account code (zero balances left out), in one document currency if given."""
    lines = JournalLine.objects.filter(entry__brand=brand, entry__livemode=livemode)
    if currency is not None:
        lines = lines.filter(entry__currency=currency)
    rows = lines.values("account__code").annotate(debit=Sum("debit"), credit=Sum("credit"))
    return {row["account__code"]: row["debit"] - row["credit"] for row in rows if row["debit"] != row["credit"]}


def lines_of(source_type: str, source_id: int, movement: str) -> list[tuple[str, int, int]]:
    """(account code, debit, credit) of one movement's entry, sorted."""
    entry = JournalEntry.objects.get(source_type=source_type, source_id=source_id, movement=movement)
    return sorted(entry.lines.values_list("account__code", "debit", "credit"))


def account_total(brand, prefix: str) -> int:
    total: dict[str, int] = defaultdict(int)
    for code, amount in balances(brand).items():
        if code.startswith(prefix):
            total[prefix] += amount
    return total[prefix]
