"""What one price costs for a quantity, in integer minor units.

Pure functions, no database: the catalog models hand their fields to
``price_amount`` and store the integer it returns.

Billing schemes (the same meaning as Stripe's):

* ``per_unit``: ``quantity x unit_amount``.
* ``tiered_graduated``: each unit is priced by the tier it falls in (units 1..10 at
  the first tier, 11..50 at the second, ...), plus the ``flat_amount`` of every tier
  reached.
* ``tiered_volume``: every unit is priced at the tier the *total* quantity falls in,
  plus that tier's ``flat_amount``.
* ``package``: ``unit_amount`` is the price of one package of ``package_size`` units;
  the number of packages is rounded ``up`` (a started package is billed) or ``down``.

Rounding: the exact amount is computed as a fraction and rounded ONCE, at the end,
half away from zero (``round_fraction``, which delegates to ``money.round_minor``).
A quantity of 0 falls in the first tier, so a first-tier ``flat_amount`` is billed
even for no usage (Stripe's "flat fee and overages" model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from billing.limits import MAX_AMOUNT
from config.errors import DomainError
from config.errors import translate as _
from config.money import round_fraction

SCHEMES: Final = ("per_unit", "tiered_graduated", "tiered_volume", "package")
PACKAGE_ROUNDINGS: Final = ("up", "down")
# The open last tier as Stripe writes it (`"up_to": "inf"`); Tarif stores and returns null.
INFINITE_UP_TO: Final = "inf"

# Fractional digits kept when an exact Fraction is written as a Decimal for round_minor.


class PricingError(DomainError, ValueError):
    """A price definition or a quantity that cannot be priced."""

    code = "pricing_refused"


def _as_amount(value: object, *, field: str) -> Decimal:
    """An amount in minor units: a finite, non-negative Decimal (ints are accepted)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{field} must be a Decimal or an int, not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise PricingError(_("%(field)s must be a finite number, got %(value)s.") % {"field": field, "value": value})
    if amount < 0:
        raise PricingError(_("%(field)s must not be negative, got %(value)s.") % {"field": field, "value": value})
    if amount > MAX_AMOUNT:
        raise PricingError(
            _("%(field)s must be at most %(max)s minor units, got %(value)s.")
            % {"field": field, "max": f"{MAX_AMOUNT:,}", "value": value}
        )
    return amount


def _check_int(value: object, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None  # inclusive upper bound of units; None = infinity (last tier)
    unit_amount: Decimal  # minor units per unit, may be fractional (0.5 cent per API call)
    flat_amount: int = 0  # minor units, added once when the tier is reached

    def __post_init__(self) -> None:
        if self.up_to is not None and _check_int(self.up_to, field="Tier.up_to") < 1:
            raise PricingError(_("A tier's up_to must be at least 1, got %(value)s.") % {"value": self.up_to})
        object.__setattr__(self, "unit_amount", _as_amount(self.unit_amount, field="Tier.unit_amount"))
        if _check_int(self.flat_amount, field="Tier.flat_amount") < 0:
            raise PricingError(
                _("A tier's flat_amount must not be negative, got %(value)s.") % {"value": self.flat_amount}
            )
        if self.flat_amount > MAX_AMOUNT:
            raise PricingError(
                _("A tier's flat_amount must be at most %(max)s minor units, got %(value)s.")
                % {"max": f"{MAX_AMOUNT:,}", "value": self.flat_amount}
            )


def validate_tiers(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    """Check that tiers ascend strictly and end with exactly one open tier (up_to=None)."""
    tiers = tuple(tiers)
    if not tiers:
        raise PricingError(_("A tiered price needs at least one tier."))
    for tier in tiers:
        if not isinstance(tier, Tier):
            raise TypeError(f"tiers must be Tier instances, not {type(tier).__name__}")
    if tiers[-1].up_to is not None:
        raise PricingError(_('The last tier must be open-ended ("up_to": null or "inf").'))
    previous = 0
    for position, tier in enumerate(tiers[:-1], start=1):
        if tier.up_to is None:
            raise PricingError(
                _("Tier %(position)s has no up_to, but only the last tier may be open-ended.") % {"position": position}
            )
        if tier.up_to <= previous:
            raise PricingError(
                _(
                    "Tiers must ascend strictly: tier %(position)s ends at %(up_to)s, "
                    "after a tier ending at %(previous)s."
                )
                % {"position": position, "up_to": tier.up_to, "previous": previous}
            )
        previous = tier.up_to
    return tiers


def _graduated(quantity: int, tiers: tuple[Tier, ...]) -> Fraction:
    total = Fraction(0)
    lower = 0  # units already priced by earlier tiers
    for tier in tiers:
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        total += (upper - lower) * Fraction(tier.unit_amount) + tier.flat_amount
        # The tier holding the last unit is the last one reached; quantity 0 reaches the first.
        if tier.up_to is None or quantity <= tier.up_to:
            break
        lower = upper
    return total


def _volume(quantity: int, tiers: tuple[Tier, ...]) -> Fraction:
    tier = next(t for t in tiers if t.up_to is None or quantity <= t.up_to)
    return quantity * Fraction(tier.unit_amount) + tier.flat_amount


def price_amount(
    *,
    scheme: str,
    quantity: int,
    unit_amount: Decimal | int | None = None,
    tiers: Sequence[Tier] = (),
    package_size: int = 1,
    package_rounding: str = "up",
) -> int:
    """Amount in minor units of one price for ``quantity`` units, rounded once."""
    if _check_int(quantity, field="quantity") < 0:
        raise PricingError(_("quantity must not be negative, got %(quantity)s") % {"quantity": quantity})
    if scheme not in SCHEMES:
        raise PricingError(
            _("unknown billing scheme %(scheme)r; expected one of %(schemes)s")
            % {"scheme": scheme, "schemes": ", ".join(SCHEMES)}
        )

    if scheme in ("tiered_graduated", "tiered_volume"):
        if unit_amount is not None:
            raise PricingError(
                _("a %(scheme)s price takes its amounts from tiers, not unit_amount") % {"scheme": scheme}
            )
        valid_tiers = validate_tiers(tiers)
        exact = _graduated(quantity, valid_tiers) if scheme == "tiered_graduated" else _volume(quantity, valid_tiers)
        return round_fraction(exact)

    if tiers:
        raise PricingError(_("a %(scheme)s price has no tiers") % {"scheme": scheme})
    if unit_amount is None:
        raise PricingError(_("a %(scheme)s price needs a unit_amount") % {"scheme": scheme})
    amount = Fraction(_as_amount(unit_amount, field="unit_amount"))

    if scheme == "per_unit":
        return round_fraction(quantity * amount)

    if _check_int(package_size, field="package_size") < 1:
        raise PricingError(_("package_size must be at least 1, got %(package_size)s") % {"package_size": package_size})
    if package_rounding not in PACKAGE_ROUNDINGS:
        raise PricingError(
            _("package_rounding must be 'up' or 'down', got %(package_rounding)r")
            % {"package_rounding": package_rounding}
        )
    if package_rounding == "up":
        packages = math.ceil(Fraction(quantity, package_size))
    else:
        packages = quantity // package_size
    return round_fraction(packages * amount)


def tiers_from_json(data: object) -> tuple[Tier, ...]:
    """Tiers as stored in Price.tiers (JSON: amounts as strings or ints, up_to null = infinity)."""
    if not isinstance(data, list) or not data:
        raise PricingError(_("Tiers must be a non-empty list of {up_to, unit_amount, flat_amount}."))
    tiers = []
    for position, raw in enumerate(data, start=1):
        if not isinstance(raw, dict):
            raise PricingError(_("Tier %(position)s must be an object.") % {"position": position})
        unknown = set(raw) - {"up_to", "unit_amount", "flat_amount"}
        if unknown:
            raise PricingError(
                _("Tier %(position)s has unknown keys: %(keys)s.")
                % {"position": position, "keys": ", ".join(sorted(unknown))}
            )
        try:
            unit_amount = Decimal(str(raw.get("unit_amount", "0")))
            flat_amount = int(raw.get("flat_amount", 0) or 0)
            up_to = raw.get("up_to")
            # Stripe writes the open last tier "up_to": "inf"; Tarif stores it as null.
            up_to = None if up_to is None or up_to == INFINITE_UP_TO else int(up_to)
        except (ArithmeticError, ValueError, TypeError) as error:
            raise PricingError(
                _('Tier %(position)s has a value that is not a number (up_to is a whole number or "inf").')
                % {"position": position}
            ) from error
        tiers.append(Tier(up_to=up_to, unit_amount=unit_amount, flat_amount=flat_amount))
    return validate_tiers(tiers)


# -- issue 16 (usage): package with free units, percentage pricing ------------------


def package_amount_with_free_units(
    *, quantity: int, unit_amount: Decimal | int, package_size: int, free_units: int, package_rounding: str = "up"
) -> int:
    """A package price whose first `free_units` units are free (Lago's package model).

    The units beyond the free ones are priced per package as ``price_amount`` does:
    $5 per 100 units with 100 free, 201 units = 0 + 2 packages = $10 (Lago's example).
    """
    if _check_int(free_units, field="free_units") < 0:
        raise PricingError(_("free_units must not be negative, got %(free_units)s") % {"free_units": free_units})
    if _check_int(quantity, field="quantity") < 0:
        raise PricingError(_("quantity must not be negative, got %(quantity)s") % {"quantity": quantity})
    return price_amount(
        scheme="package",
        quantity=max(0, quantity - free_units),
        unit_amount=unit_amount,
        package_size=package_size,
        package_rounding=package_rounding,
    )


@dataclass(frozen=True, slots=True)
class PercentageRule:
    """Lago's percentage charge model; amounts in minor units of the price's currency.

    rate: percent of each transaction's amount (1.2 = 1.2 %).
    fixed_amount: a fee per transaction, waived for the first `free_events` transactions.
    free_amount: the first `free_amount` of cumulated transaction amount bears no rate.
    per_transaction_min/max: bounds of each transaction's rate fee (a transaction whose
        amount is wholly free bears no minimum).
    """

    rate: Decimal
    fixed_amount: Decimal = Decimal(0)
    free_events: int = 0
    free_amount: Decimal = Decimal(0)
    per_transaction_min: Decimal | None = None
    per_transaction_max: Decimal | None = None

    def __post_init__(self) -> None:
        rate = Decimal(self.rate)
        if not rate.is_finite() or rate < 0 or rate > 100:
            raise PricingError(_("the percentage rate must be between 0 and 100, got %(rate)s") % {"rate": self.rate})
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "fixed_amount", _as_amount(self.fixed_amount, field="fixed_amount"))
        object.__setattr__(self, "free_amount", _as_amount(self.free_amount, field="free_amount"))
        if _check_int(self.free_events, field="free_events") < 0:
            raise PricingError(
                _("free_events must not be negative, got %(free_events)s") % {"free_events": self.free_events}
            )
        low = None if self.per_transaction_min is None else _as_amount(self.per_transaction_min, field="min")
        high = None if self.per_transaction_max is None else _as_amount(self.per_transaction_max, field="max")
        if low is not None and high is not None and low > high:
            raise PricingError(_("the per-transaction minimum must not exceed the maximum"))
        object.__setattr__(self, "per_transaction_min", low)
        object.__setattr__(self, "per_transaction_max", high)


def percentage_amount(*, transactions: Sequence[Decimal | int], rule: PercentageRule) -> int:
    """What a list of transactions (in the order they happened) costs under `rule`, rounded once.

    Per transaction: the rate applies to the part of its amount beyond what remains of
    `free_amount`, that rate fee is bounded by the per-transaction min/max, and the
    fixed fee is added from the (free_events + 1)-th transaction on. The exact sum of
    all transactions' fees is rounded once (Lago rounds the fee, not each transaction).
    """
    rate = Fraction(rule.rate) / 100
    free_left = Fraction(rule.free_amount)
    total = Fraction(0)
    for position, raw in enumerate(transactions, start=1):
        amount = Fraction(_as_amount(raw, field="transaction amount"))
        chargeable = max(Fraction(0), amount - free_left)
        free_left = max(Fraction(0), free_left - amount)
        if chargeable > 0:
            fee = chargeable * rate
            if rule.per_transaction_min is not None:
                fee = max(fee, Fraction(rule.per_transaction_min))
            if rule.per_transaction_max is not None:
                fee = min(fee, Fraction(rule.per_transaction_max))
            total += fee
        if position > rule.free_events:
            total += Fraction(rule.fixed_amount)
    return round_fraction(total)


def usage_filter_matches(*, usage_filter: Mapping[str, Sequence[str]], properties: Mapping[str, object]) -> bool:
    """Whether an event's properties match a price's filter: every key, one of its values."""
    return all(key in properties and str(properties[key]) in values for key, values in usage_filter.items())
