"""The bounds of every amount and quantity Tarif accepts, in one leaf module.

Every entry point enforces them: the API's serializers and the console's forms (through the
model fields' validators), CSV imports (the same validators), and the services themselves
(defence in depth: a command, a task or a future entry point cannot bypass them). A value
outside them is refused with `AmountOutOfBounds` (HTTP 400) before anything is stored, so
the billing run never meets an amount that overflows a sum (an invoice item of 2^63 - 1
minor units used to make a whole billing chunk fail).

The figures follow Stripe's: at most 99,999,999 minor units per line or unit amount
(999,999.99 in a two-decimal currency), and an invoice total that stays far below the
64-bit integer columns even summed over a customer's whole history. Written down in
docs/billing.md ("Bounds") and docs/api.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext as _

from config.errors import DomainBoundsError

# Minor units per line, per unit amount (price, tier, one-off item), per flat tier fee, per
# fixed coupon discount; one-off items and credits may be negative down to -MAX_AMOUNT.
MAX_AMOUNT: Final = 99_999_999
# Units on one subscription item or one-off item, and the size of a package.
MAX_QUANTITY: Final = 1_000_000
# An invoice total, a payment, a refund, a credit note, a balance adjustment (minor units):
# 10^12 = ten billion in a two-decimal currency.
MAX_TOTAL: Final = 1_000_000_000_000
# One usage event's value (metered prices multiply it by a unit amount of at most MAX_AMOUNT).
MAX_USAGE_VALUE: Final = 1_000_000_000


class AmountOutOfBounds(DomainBoundsError, ValidationError):
    """Also a ValidationError: the console's forms and the imports show it like any refusal."""

    code = "out_of_bounds"
    http_status = 400

    def __init__(self, message: Any = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_amount(value: Any, *, field: str, allow_negative: bool = False, maximum: int = MAX_AMOUNT) -> None:
    """Refuse an amount outside [0 (or -maximum), maximum]; Decimals (sub-cent prices) too."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise AmountOutOfBounds(_("%(field)s must be a number.") % {"field": field}, field=field)
    if isinstance(value, Decimal) and not value.is_finite():
        raise AmountOutOfBounds(_("%(field)s must be a finite number.") % {"field": field}, field=field)
    minimum = -maximum if allow_negative else 0
    if not minimum <= value <= maximum:
        raise AmountOutOfBounds(
            _("%(field)s must be between %(minimum)s and %(maximum)s minor units.")
            % {"field": field, "minimum": f"{minimum:,}", "maximum": f"{maximum:,}"},
            field=field,
        )


def check_quantity(value: Any, *, field: str = "quantity", minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_QUANTITY:
        raise AmountOutOfBounds(
            _("%(field)s must be a whole number between %(minimum)s and %(maximum)s.")
            % {"field": field, "minimum": minimum, "maximum": f"{MAX_QUANTITY:,}"},
            field=field,
        )


def amount_validators(*, allow_negative: bool = False, maximum: int = MAX_AMOUNT) -> list[Any]:
    """Model-field validators for an amount: the API's model serializers, the console's forms
    and the imports run them."""
    return [MinValueValidator(-maximum if allow_negative else 0), MaxValueValidator(maximum)]


def quantity_validators(*, minimum: int = 1) -> list[Any]:
    return [MinValueValidator(minimum), MaxValueValidator(MAX_QUANTITY)]
