"""Invoice totals: the one place where discounts and tax are computed.

Pure functions, no database: the invoice services pass plain line and discount inputs
and store the integers that come back. All amounts are integer minor units of the
invoice currency (cents for EUR, yen for JPY); rates are Decimal percentages.

Rules
-----
1. **Subtotal** is the sum of the line amounts as given (signed: proration credits
   are negative; tax-inclusive lines count with their tax).
2. **Discounts** apply one after the other, in the order given, to the *eligible*
   lines: positive, ``discountable`` lines whose ``product_key`` is in the
   discount's ``products`` (``None`` = every product), taking each line's amount
   left after the previous discounts.

   * ``percent_off``: each eligible line gets ``round(remaining x percent / 100)``,
     rounded once per line (``percent_discount``: the one percent-discount rule, which
     proration's "what was paid for the period" reads too).
   * ``amount_off``: capped at the eligible total, then shared across eligible lines
     in proportion to what is left of them, by the largest-remainder method (floor
     every exact share, hand the missing minor units to the largest fractional
     parts, earlier lines first on ties), so the shares add up exactly.

   A discount never makes a line negative and never exceeds the eligible total.
   Negative (credit) lines and non-discountable lines are never discounted.
3. **Tax** is computed per tax group ``(category, rate, inclusive)`` on the group's
   total after discounts, rounded ONCE per group, as EN 16931 BR-CO-17 expects:

   * exclusive: ``tax = round(taxable x rate / 100)``;
   * inclusive: ``tax = round(gross x rate / (100 + rate))`` and
     ``taxable = gross - tax``.

   Each line's share of its group's tax is the exact per-line tax, floored, plus the
   group's leftover minor units by largest remainder, so line shares add up exactly
   to the group tax and each is within one minor unit of its exact value (also when
   a group mixes charges and credits).
4. **Totals**: ``total = subtotal - discount_total + exclusive tax`` (inclusive tax is
   already inside the amounts); ``total_excluding_tax = total - tax_total``, which is
   also the sum of the groups' taxable amounts. These identities hold exactly.
5. **Rounding** is half away from zero everywhere (``config.money.round_minor``, via
   ``round_fraction`` for exact fractions), so a credit and the matching charge
   round to the same magnitude.

A tax group also carries the exemption reason (EN 16931 BT-120/121) of its lines, for
exempt and out-of-scope groups (issue 16, item 11: tax codes): when the lines of one group
disagree, the group keeps the distinct texts joined with "; " and no code (EN 16931 allows
one breakdown per category and rate, and a reason as text or code).

Tax categories are the EN 16931 / UNCL5305 codes: S standard (rate > 0), Z zero rated,
E exempt, AE reverse charge, K intra-community supply, G export, O outside the scope
of VAT (all at rate 0), L and M (Canary Islands IGIC, Ceuta and Melilla IPSI).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from config.errors import DomainError
from config.errors import translate as _
from config.money import round_fraction, validate_currency

TAX_CATEGORIES: Final = frozenset({"S", "Z", "E", "AE", "K", "G", "O", "L", "M"})
ZERO_RATE_CATEGORIES: Final = frozenset({"Z", "E", "AE", "K", "G", "O"})


class CalculationError(DomainError, ValueError):
    """Inputs an invoice cannot be computed from: mixed currencies, bad rates, bad discounts."""

    code = "calculation_refused"


def _check_int(value: object, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int number of minor units, not {type(value).__name__}")
    return value


def _as_percent(value: object, *, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{field} must be a Decimal percentage, not {type(value).__name__}")
    percent = Decimal(value)
    if not percent.is_finite():
        raise CalculationError(_("%(field)s must be a finite number, got %(value)s") % {"field": field, "value": value})
    return percent


def _check_currency(currency: str | None, *, invoice_currency: str, what: str) -> None:
    if currency is not None and validate_currency(currency) != invoice_currency:
        raise CalculationError(
            _("%(what)s is in %(currency)s but the invoice is in %(invoice_currency)s")
            % {"what": what, "currency": currency.upper(), "invoice_currency": invoice_currency}
        )


@dataclass(frozen=True, slots=True)
class LineInput:
    amount: int  # minor units, signed (credits negative), before discount
    tax_rate: Decimal  # percent, e.g. Decimal("20"); 0 for exempt / reverse charge
    tax_category: str = "S"  # UNCL5305 code, see the module docstring
    tax_inclusive: bool = False  # amount already includes tax
    discountable: bool = True
    product_key: str | None = None  # for coupons limited to products
    currency: str | None = None  # when given, must be the invoice currency
    exemption_reason_code: str = ""  # VATEX code (BT-121) of an exempt / out-of-scope line
    exemption_reason: str = ""  # its text (BT-120)

    def __post_init__(self) -> None:
        _check_int(self.amount, field="LineInput.amount")
        for field in ("tax_inclusive", "discountable"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"LineInput.{field} must be a bool")
        rate = _as_percent(self.tax_rate, field="LineInput.tax_rate")
        object.__setattr__(self, "tax_rate", rate)
        if not 0 <= rate <= 100:
            raise CalculationError(_("tax rate must be between 0 and 100 percent, got %(rate)s") % {"rate": rate})
        if self.tax_category not in TAX_CATEGORIES:
            expected = ", ".join(sorted(TAX_CATEGORIES))
            raise CalculationError(
                _("unknown tax category %(tax_category)r; expected one of %(expected)s")
                % {"tax_category": self.tax_category, "expected": expected}
            )
        if self.tax_category in ZERO_RATE_CATEGORIES and rate != 0:
            raise CalculationError(
                _("tax category %(tax_category)s is charged at 0%%, got %(rate)s%%")
                % {"tax_category": self.tax_category, "rate": rate}
            )
        if self.tax_category == "S" and rate == 0:
            raise CalculationError(_("tax category S (standard) needs a rate above 0%; use Z for zero-rated"))


@dataclass(frozen=True, slots=True)
class DiscountInput:
    percent_off: Decimal | None = None
    amount_off: int | None = None  # minor units, same currency
    products: frozenset[str] | None = None  # None = all products
    currency: str | None = None  # currency of amount_off; when given, must be the invoice currency

    def __post_init__(self) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise CalculationError(_("a discount needs exactly one of percent_off and amount_off"))
        if self.percent_off is not None:
            percent = _as_percent(self.percent_off, field="DiscountInput.percent_off")
            object.__setattr__(self, "percent_off", percent)
            if not 0 < percent <= 100:
                raise CalculationError(
                    _("percent_off must be above 0 and at most 100, got %(percent)s") % {"percent": percent}
                )
        if self.amount_off is not None and _check_int(self.amount_off, field="DiscountInput.amount_off") < 0:
            raise CalculationError(
                _("amount_off must not be negative, got %(amount_off)s") % {"amount_off": self.amount_off}
            )
        if self.products is not None:
            if isinstance(self.products, str) or not isinstance(self.products, Iterable):
                raise TypeError("DiscountInput.products must be a set of product keys")
            object.__setattr__(self, "products", frozenset(self.products))


@dataclass(frozen=True, slots=True)
class LineTotals:
    amount: int  # as given
    discount_amount: int  # >= 0, all discounts together
    taxable_amount: int  # net of discount and of tax
    tax_amount: int  # this line's share of its tax group's tax
    total: int  # what the line adds to the invoice total: after discount, with tax


@dataclass(frozen=True, slots=True)
class TaxGroup:
    category: str
    rate: Decimal
    inclusive: bool
    taxable_amount: int
    tax_amount: int
    exemption_reason_code: str = ""
    exemption_reason: str = ""


def _group_reason(lines: Iterable[LineInput]) -> tuple[str, str]:
    """(code, text) of a tax group's exemption reason: the lines' own when they agree; else
    their distinct texts joined, and no code."""
    reasons = list(dict.fromkeys((line.exemption_reason_code, line.exemption_reason) for line in lines))
    if len(reasons) == 1:
        return reasons[0]
    texts = list(dict.fromkeys(text or code for code, text in reasons if text or code))
    return "", "; ".join(texts)


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    currency: str
    subtotal: int
    discount_total: int
    tax_total: int
    total: int
    total_excluding_tax: int
    lines: tuple[LineTotals, ...]  # in the order of the input lines
    tax_breakdown: tuple[TaxGroup, ...]  # in the order each group first appears
    discount_amounts: tuple[int, ...]  # what each discount took off, in the order given


def _largest_remainder(total: int, exact_shares: Sequence[Fraction]) -> list[int]:
    """Integers, each the floor or ceiling of its exact share, that add up to ``total``.

    ``total`` must be the sum of the exact shares rounded to an integer (any direction
    within one unit per non-integral share); the leftover units after flooring go to
    the largest fractional parts, earlier shares first on ties.
    """
    floors = [math.floor(share) for share in exact_shares]
    leftover = total - sum(floors)
    by_remainder = sorted(
        (index for index, share in enumerate(exact_shares) if share != floors[index]),
        key=lambda index: (-(exact_shares[index] - floors[index]), index),
    )
    if not 0 <= leftover <= len(by_remainder):
        raise AssertionError(f"cannot allocate {total} over shares {exact_shares}")
    for index in by_remainder[:leftover]:
        floors[index] += 1
    return floors


def percent_discount(amount: int, percent: Decimal | int) -> int:
    """What a percent-off discount takes off one line of ``amount`` minor units.

    ``round(amount x percent / 100)``, half away from zero, rounded once per line. A line
    that is not a charge (zero or a credit) is never discounted, so this is 0 for it.
    Every percent discount of Tarif comes here: the invoice totals below, and proration's
    credit for unused time (billing.selectors.item_charges), so a credit returns exactly
    what the discounted period charged.
    """
    _check_int(amount, field="amount")
    percent = _as_percent(percent, field="percent")
    if not 0 < percent <= 100:
        raise CalculationError(_("percent_off must be above 0 and at most 100, got %(percent)s") % {"percent": percent})
    if amount <= 0:
        return 0
    return round_fraction(amount * Fraction(percent) / 100)


def _apply_discount(
    discount: DiscountInput, lines: Sequence[LineInput], remaining: list[int], *, independent: bool = False
) -> list[int]:
    """Per-line amounts ``discount`` takes off, given what is left of each line.

    ``independent``: computed on the lines' undiscounted amounts (each line's share then
    capped at what is left of it), instead of on what the previous discounts left.
    """
    if independent:
        base = [min(line.amount, left) if left > 0 else 0 for line, left in zip(lines, remaining, strict=True)]
        full = _apply_discount(
            discount,
            lines,
            [max(line.amount, 0) if left > 0 else 0 for line, left in zip(lines, remaining, strict=True)],
        )
        return [min(taken, cap) for taken, cap in zip(full, base, strict=True)]
    eligible = [
        index
        for index, line in enumerate(lines)
        if line.discountable
        and remaining[index] > 0
        and (discount.products is None or line.product_key in discount.products)
    ]
    taken = [0] * len(lines)
    if discount.percent_off is not None:
        for index in eligible:
            taken[index] = percent_discount(remaining[index], discount.percent_off)
        return taken
    assert discount.amount_off is not None
    eligible_total = sum(remaining[index] for index in eligible)
    amount = min(discount.amount_off, eligible_total)
    if amount == 0:
        return taken
    shares = _largest_remainder(amount, [Fraction(amount * remaining[index], eligible_total) for index in eligible])
    for index, share in zip(eligible, shares, strict=True):
        taken[index] = share
    return taken


STACKINGS: Final = ("sequential", "independent")


def compute_invoice_totals(
    *,
    currency: str,
    lines: Sequence[LineInput],
    discounts: Sequence[DiscountInput] = (),
    stacking: str = "sequential",
) -> InvoiceTotals:
    """Discounts, tax and totals of an invoice, following the rules in the module docstring.

    ``stacking``: ``sequential`` (rule 2: each discount on what the previous ones left, Lago's
    order) or ``independent`` (each on the undiscounted amounts, Stripe-like; every line's
    discounts together still capped at the line).
    """
    if stacking not in STACKINGS:
        raise CalculationError(
            _("unknown discount stacking %(stacking)r; expected one of %(stackings)s")
            % {"stacking": stacking, "stackings": ", ".join(STACKINGS)}
        )
    currency = validate_currency(currency)
    for line in lines:
        if not isinstance(line, LineInput):
            raise TypeError(f"lines must be LineInput instances, not {type(line).__name__}")
        _check_currency(line.currency, invoice_currency=currency, what="a line")
    for discount in discounts:
        if not isinstance(discount, DiscountInput):
            raise TypeError(f"discounts must be DiscountInput instances, not {type(discount).__name__}")
        _check_currency(discount.currency, invoice_currency=currency, what="a discount")

    remaining = [line.amount for line in lines]
    discount_amounts: list[int] = []
    for discount in discounts:
        taken = _apply_discount(discount, lines, remaining, independent=stacking == "independent")
        remaining = [left - off for left, off in zip(remaining, taken, strict=True)]
        discount_amounts.append(sum(taken))

    groups: dict[tuple[str, Decimal, bool], list[int]] = {}
    for index, line in enumerate(lines):
        groups.setdefault((line.tax_category, line.tax_rate, line.tax_inclusive), []).append(index)

    line_tax = [0] * len(lines)
    tax_breakdown: list[TaxGroup] = []
    for (category, rate, inclusive), members in groups.items():
        # Inclusive amounts hold the tax: the tax part of a gross amount is rate / (100 + rate).
        tax_share = Fraction(rate) / (100 + Fraction(rate)) if inclusive else Fraction(rate) / 100
        base = sum(remaining[index] for index in members)
        group_tax = round_fraction(base * tax_share)
        shares = _largest_remainder(group_tax, [remaining[index] * tax_share for index in members])
        for index, share in zip(members, shares, strict=True):
            line_tax[index] = share
        reason_code, reason = _group_reason(lines[index] for index in members)
        tax_breakdown.append(
            TaxGroup(
                category=category,
                rate=rate,
                inclusive=inclusive,
                taxable_amount=base - group_tax if inclusive else base,
                tax_amount=group_tax,
                exemption_reason_code=reason_code,
                exemption_reason=reason,
            )
        )

    line_totals = tuple(
        LineTotals(
            amount=line.amount,
            discount_amount=line.amount - remaining[index],
            taxable_amount=remaining[index] - line_tax[index] if line.tax_inclusive else remaining[index],
            tax_amount=line_tax[index],
            total=remaining[index] if line.tax_inclusive else remaining[index] + line_tax[index],
        )
        for index, line in enumerate(lines)
    )
    subtotal = sum(line.amount for line in lines)
    discount_total = sum(discount_amounts)
    tax_total = sum(group.tax_amount for group in tax_breakdown)
    exclusive_tax = sum(group.tax_amount for group in tax_breakdown if not group.inclusive)
    total = subtotal - discount_total + exclusive_tax
    return InvoiceTotals(
        currency=currency,
        subtotal=subtotal,
        discount_total=discount_total,
        tax_total=tax_total,
        total=total,
        total_excluding_tax=total - tax_total,
        lines=line_totals,
        tax_breakdown=tuple(tax_breakdown),
        discount_amounts=tuple(discount_amounts),
    )


def credit_split(*, total: int, balance: int) -> int:
    """Signed customer credit an invoice uses (`starting_balance_applied`).

    Positive: credit taken from the balance, at most the total. Negative: a negative
    total handed to the balance. amount_due = total - credit_split, never negative.
    The one rule: issuing (invoices/services/finalize.py) and every preview
    (`invoice_build`) apply it.
    """
    if total < 0:
        return total
    return min(max(balance, 0), total)
