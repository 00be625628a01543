"""Real-time proration of a subscription change, to the second.

Pure functions, no database: the subscription service passes what the items cost for a
full period and when the change happens, and turns the returned lines into pending
invoice items (or shows them as a preview).

Rules:

* The remaining part of the period is ``(period_end - at) / (period_end - period_start)``,
  measured in real elapsed time (instants are compared in UTC, so a period that spans a
  daylight-saving change counts the seconds that really passed), clamped to [0, 1].
* A prorated amount is ``round_half_away_from_zero(amount x remaining)``, computed exactly
  and rounded once. Because the rounding is symmetric, the credit for unused time on an
  item and the charge for the remaining time on the same item have the same magnitude:
  a change A -> B followed by B -> A at the same instant nets to exactly zero.
* An item whose key, quantity and amount are unchanged produces nothing. Every other old
  item gives a credit line ("Unused time on ..."), every other new item a charge line
  ("Remaining time on ..."). Credits come first, in the order of the old items, then
  charges in the order of the new items. Lines cover ``[at, period_end)``.
* A line that prorates to 0 minor units is left out, so a change at (or after) the end
  of the period yields no lines, and a change at (or before) its start credits and
  charges full amounts.

Callers should pass ``at`` with whole seconds (as Stripe's ``proration_date`` does) so
that a preview and the change that follows it compute the same lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from config.errors import DomainError
from config.money import round_fraction


class ProrationError(DomainError, ValueError):
    """Inputs that cannot be prorated: naive datetimes, an empty period, duplicate keys."""

    code = "proration_refused"


@dataclass(frozen=True, slots=True)
class ItemCharge:
    """One subscription item as billed for a FULL period."""

    key: str  # identifies price+item, e.g. "price:12"
    description: str
    quantity: int
    amount: int  # minor units for the full period (already computed by pricing)

    def __post_init__(self) -> None:
        for field, value in (("quantity", self.quantity), ("amount", self.amount)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"ItemCharge.{field} must be an int, not {type(value).__name__}")
        if self.quantity < 0:
            raise ProrationError(
                f"ItemCharge.quantity must not be negative, got {self.quantity}"
            )  # untranslated: internal input built by the services, never typed by a person


@dataclass(frozen=True, slots=True)
class ProrationLine:
    key: str
    description: str
    quantity: int
    amount: int  # negative for credits ("Unused time on ..."), positive for charges
    period_start: datetime
    period_end: datetime
    item_description: str = ""  # the item alone, for wording the line in the invoice's language


def _utc(value: datetime, *, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ProrationError(
            f"{name} must be timezone-aware, got naive {value.isoformat()}"
        )  # untranslated: internal input built by the services, never typed by a person
    # Subtracting two datetimes that share a tzinfo ignores their UTC offsets (wall-clock
    # arithmetic); converting to UTC first makes every difference real elapsed time.
    return value.astimezone(UTC)


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def remaining_fraction(*, period_start: datetime, period_end: datetime, at: datetime) -> Fraction:
    """Share of the period still to run at ``at``: seconds left / seconds in period, in [0, 1]."""
    start = _utc(period_start, name="period_start")
    end = _utc(period_end, name="period_end")
    moment = _utc(at, name="at")
    if end <= start:
        raise ProrationError(  # untranslated: internal input built by the services, never typed by a person
            f"period_end ({period_end.isoformat()}) must be after period_start ({period_start.isoformat()})"
        )
    remaining = Fraction(_microseconds(end - moment), _microseconds(end - start))
    return min(max(remaining, Fraction(0)), Fraction(1))


def prorate(*, amount: int, period_start: datetime, period_end: datetime, at: datetime) -> int:
    """The part of a full-period ``amount`` that covers ``[at, period_end)``, rounded once."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int number of minor units, not {type(amount).__name__}")
    remaining = remaining_fraction(period_start=period_start, period_end=period_end, at=at)
    return round_fraction(amount * remaining)


def _by_key(items: Sequence[ItemCharge], *, name: str) -> dict[str, ItemCharge]:
    indexed: dict[str, ItemCharge] = {}
    for item in items:
        if not isinstance(item, ItemCharge):
            raise TypeError(f"{name} must hold ItemCharge instances, not {type(item).__name__}")
        if item.key in indexed:
            raise ProrationError(
                f"duplicate item key {item.key!r} in {name}"
            )  # untranslated: internal input built by the services, never typed by a person
        indexed[item.key] = item
    return indexed


def change_proration(
    *,
    old_items: Sequence[ItemCharge],
    new_items: Sequence[ItemCharge],
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> list[ProrationLine]:
    """Credit the unused time of what changed and charge the remaining time of what replaced it."""
    old_by_key = _by_key(old_items, name="old_items")
    new_by_key = _by_key(new_items, name="new_items")
    remaining = remaining_fraction(period_start=period_start, period_end=period_end, at=at)
    line_start = max(at, period_start)  # a change before the period starts covers all of it

    def unchanged(item: ItemCharge, other: ItemCharge | None) -> bool:
        return other is not None and (other.quantity, other.amount) == (item.quantity, item.amount)

    changes = [
        (item, -1, "Unused time on") for item in old_by_key.values() if not unchanged(item, new_by_key.get(item.key))
    ] + [
        (item, 1, "Remaining time on") for item in new_by_key.values() if not unchanged(item, old_by_key.get(item.key))
    ]
    lines: list[ProrationLine] = []
    for item, sign, label in changes:
        amount = sign * round_fraction(item.amount * remaining)
        if amount == 0:
            continue
        lines.append(
            ProrationLine(
                key=item.key,
                description=f"{label} {item.description}",
                quantity=item.quantity,
                amount=amount,
                period_start=line_start,
                period_end=period_end,
                item_description=item.description,
            )
        )
    return lines


def cancellation_credit(
    *, items: Sequence[ItemCharge], period_start: datetime, period_end: datetime, at: datetime
) -> list[ProrationLine]:
    """Credit lines for the unused time of every item when a subscription is cancelled at ``at``."""
    return change_proration(old_items=items, new_items=(), period_start=period_start, period_end=period_end, at=at)
