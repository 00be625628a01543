"""Which credits pay which invoice lines: pure arithmetic, no database (docs/billing.md "Prepaid credits").

Rules:
- grants are used in order: lower `priority` first, then the earliest expiry (no expiry
  last), then the oldest (`created_at`, then id);
- a grant pays only the lines it is eligible for (all, usage lines, or chosen prices or
  products), each line at most its *capacity*: its amount after discounts, plus its
  exclusive tax when credits apply after tax (`after_tax`, Lago), or without it
  (`before_tax`, Stripe); a line with a negative amount (a proration credit) has no capacity;
- all grants together pay at most the invoice total (after tax; never below zero), so an
  invoice with credit lines is never taken below zero;
- a grant that is not usable at the invoice's instant (not yet effective, expired, not
  active, empty) pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

AFTER_TAX = "after_tax"
BEFORE_TAX = "before_tax"
MODES = (AFTER_TAX, BEFORE_TAX)

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LineCapacity:
    key: int  # the line's position (or id)
    kind: str  # InvoiceLine.Kind value
    net: int  # amount after discounts, excluding tax
    exclusive_tax: int  # tax added on top of `net` (0 for tax-inclusive lines)
    price_id: int | None = None
    product_id: int | None = None

    def capacity(self, mode: str) -> int:
        gross = self.net + (self.exclusive_tax if mode == AFTER_TAX else 0)
        return max(gross, 0)


@dataclass(frozen=True, slots=True)
class GrantState:
    grant_id: int
    remaining: int
    priority: int
    created_at: datetime
    effective_at: datetime
    expires_at: datetime | None
    active: bool = True
    applies_to: str = "all"  # all | usage | prices
    price_ids: frozenset[int] = frozenset()
    product_ids: frozenset[int] = frozenset()

    def usable_at(self, at: datetime) -> bool:
        if not self.active or self.remaining <= 0 or self.effective_at > at:
            return False
        return self.expires_at is None or self.expires_at > at

    def eligible(self, line: LineCapacity) -> bool:
        if self.applies_to == "usage":
            return line.kind == "usage"
        if self.applies_to == "prices":
            return (line.price_id is not None and line.price_id in self.price_ids) or (
                line.product_id is not None and line.product_id in self.product_ids
            )
        return True


def grant_order_key(grant: GrantState) -> tuple[int, datetime, datetime, int]:
    expires = grant.expires_at if grant.expires_at is not None else _FAR_FUTURE
    return (grant.priority, expires, grant.created_at, grant.grant_id)


@dataclass(slots=True)
class Allocation:
    by_grant: dict[int, int] = field(default_factory=dict)  # grant id -> consumed (> 0)
    by_line: dict[int, int] = field(default_factory=dict)  # line key -> paid by credits

    @property
    def total(self) -> int:
        return sum(self.by_grant.values())


def allocate(
    *,
    lines: Sequence[LineCapacity],
    invoice_total: int,
    grants: Sequence[GrantState],
    at: datetime,
    mode: str = AFTER_TAX,
) -> Allocation:
    """How much of each grant pays this invoice (see the module's rules)."""
    if mode not in MODES:
        raise ValueError(f"unknown wallet mode {mode!r}: one of {', '.join(MODES)}")
    left_on_invoice = max(invoice_total, 0)
    left_on_line = {line.key: line.capacity(mode) for line in lines}
    allocation = Allocation()
    for grant in sorted((g for g in grants if g.usable_at(at)), key=grant_order_key):
        if left_on_invoice <= 0:
            break
        left_in_grant = grant.remaining
        for line in lines:
            if left_in_grant <= 0 or left_on_invoice <= 0:
                break
            if not grant.eligible(line):
                continue
            take = min(left_on_line[line.key], left_in_grant, left_on_invoice)
            if take <= 0:
                continue
            left_on_line[line.key] -= take
            left_in_grant -= take
            left_on_invoice -= take
            allocation.by_line[line.key] = allocation.by_line.get(line.key, 0) + take
        used = grant.remaining - left_in_grant
        if used:
            allocation.by_grant[grant.grant_id] = used
    return allocation
