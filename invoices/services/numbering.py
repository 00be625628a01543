"""Gapless number series for invoices and credit notes.

A series is (brand, kind, scope); the scope is the year of the issue date in the
brand's time zone when the format contains ``{year}`` (plus the month when it also
contains ``{month}``), else the empty string: one continuous series.

Numbers are taken from a `NumberSequence` row under a row lock held until the
surrounding transaction commits: a transaction that rolls back gives its numbers back
(its UPDATE is undone), so no gap appears, and concurrent finalizations wait for each
other, so no number is issued twice. Call this only inside the transaction that
stores the documents carrying the numbers, as late as possible in it: the lock
serializes every finalization of the brand until commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F

from invoices.errors import NumberingError
from invoices.locks import number_sequence_qs_for_update
from invoices.models import Brand, NumberSequence

Kind = NumberSequence.Kind

_FORMAT_FIELD = {Kind.INVOICE: "invoice_number_format", Kind.CREDIT_NOTE: "credit_note_number_format"}


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Where the next number of a brand's series comes from, and how it is written."""

    scope: str
    number_format: str
    year: int
    month: int


# Invoices of test-mode customers (test clocks, sandbox keys) are simulations: their own series
# (TEST-...) so the brand's legal series never holds them and stays gapless without them.
TEST_PREFIX = "TEST-"


def customer_numbered_as_test(customer: Any) -> bool:
    """A test-mode customer's documents (and those of any customer on a test clock) are simulations."""
    return not customer.livemode or customer.test_clock_id is not None


def number_series_key(*, brand: Brand, kind: str, at: datetime, test_mode: bool = False) -> SeriesKey:
    if kind not in _FORMAT_FIELD:
        raise NumberingError(f"Unknown number series kind {kind!r}; expected one of {', '.join(_FORMAT_FIELD)}.")
    if at.tzinfo is None:
        raise NumberingError("The issue date must be an aware datetime (UTC in the database).")
    number_format = getattr(brand, _FORMAT_FIELD[kind])
    local = at.astimezone(ZoneInfo(brand.timezone))
    if "{year" in number_format:
        scope = f"{local.year:04d}-{local.month:02d}" if "{month" in number_format else f"{local.year:04d}"
    else:
        # Without the year in the number the series never restarts, else numbers would repeat.
        scope = ""
    if test_mode:
        number_format, scope = TEST_PREFIX + number_format, f"test:{scope}"
    return SeriesKey(scope=scope, number_format=number_format, year=local.year, month=local.month)


def _format(key: SeriesKey, value: int) -> str:
    try:
        return key.number_format.format(seq=value, year=key.year, month=key.month)
    except (KeyError, ValueError, IndexError) as error:
        raise NumberingError(
            f"The number format {key.number_format!r} is invalid ({error}); use e.g. INV-{{year}}-{{seq:06d}}."
        ) from error


@transaction.atomic(savepoint=False)
def number_sequence_reserve(
    *, brand: Brand, kind: str, at: datetime, count: int = 1, test_mode: bool = False
) -> list[str]:
    """`count` consecutive numbers of `brand`'s `kind` series for documents issued `at`.

    Queries: the brand-clash check, the locked read, the increment (plus the insert of
    the sequence row the first time a scope is used) -- whatever `count` is.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise NumberingError(f"Reserve at least one number, not {count!r}.")
    key = number_series_key(brand=brand, kind=kind, at=at, test_mode=test_mode)
    format_field = _FORMAT_FIELD[kind]
    clash = Brand.objects.exclude(pk=brand.pk).filter(**{format_field: key.number_format}).values_list("name").first()
    if clash is not None:
        raise NumberingError(
            f"The brands {brand.name} and {clash[0]} share the number format {key.number_format!r}: numbers are "
            "unique across brands, so give each brand its own prefix."
        )
    sequence, _ = number_sequence_qs_for_update().get_or_create(brand=brand, kind=kind, scope=key.scope)
    # Under the lock the value read is current; the F() update keeps the counter honest anyway.
    NumberSequence.objects.filter(pk=sequence.pk).update(last_value=F("last_value") + count)
    first = sequence.last_value + 1
    return [_format(key, value) for value in range(first, first + count)]
