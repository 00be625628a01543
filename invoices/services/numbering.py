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

Number order is date order (French law: one chronological, continuous series). The
issue instant is taken under the sequence lock (`number_series_lock`): read from the
billing clock there when the caller gives none, and never earlier than the series'
last issue (`NumberSequence.last_issued_at`). A caller's `at` read before the lock that
a concurrent finalization overtook by at most `TARIF_ISSUE_CLOCK_TOLERANCE_SECONDS` is
moved up to that last issue; an older `at` would backdate the document and is refused.
Test-clock series (TEST-...) are simulations shared by every clock of a brand: their
documents keep the simulated time.

`number_series_commit` then takes the numbers and links each document into the
series' hash chain (invoices/chain.py) in the same UPDATE of the sequence row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext

from config import clock
from customers.models import Customer
from invoices.chain import chain_link
from invoices.errors import NumberingError
from invoices.ledger.postings import ledger_brand_ready
from invoices.locks import number_sequence_qs_for_update
from invoices.models import Brand, NumberSequence

Kind = NumberSequence.Kind

_FORMAT_FIELD: dict[str, str] = {Kind.INVOICE: "invoice_number_format", Kind.CREDIT_NOTE: "credit_note_number_format"}


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


def customer_numbered_as_test(customer: Customer) -> bool:
    """A test-mode customer's documents (and those of any customer on a test clock) are simulations."""
    return not customer.livemode or customer.test_clock_id is not None


def number_series_key(*, brand: Brand, kind: str, at: datetime, test_mode: bool = False) -> SeriesKey:
    if kind not in _FORMAT_FIELD:
        raise NumberingError(
            f"Unknown number series kind {kind!r}; expected one of {', '.join(_FORMAT_FIELD)}."
        )  # untranslated: programmer error (kinds and counts come from code)
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


def sequence_series_key(sequence: NumberSequence) -> SeriesKey:
    """How the numbers of an existing sequence row are written (its brand's current format)."""
    number_format = getattr(sequence.brand, _FORMAT_FIELD[sequence.kind])
    scope = sequence.scope
    if scope.startswith("test:"):
        number_format, scope = TEST_PREFIX + number_format, scope[len("test:") :]
    year, _, month = scope.partition("-")
    return SeriesKey(scope=sequence.scope, number_format=number_format, year=int(year or 0), month=int(month or 0))


def sequence_numbers(sequence: NumberSequence) -> list[str]:
    """Every number the sequence has issued, in order."""
    key = sequence_series_key(sequence)
    return [_format(key, value) for value in range(1, sequence.last_value + 1)]


def _format(key: SeriesKey, value: int) -> str:
    try:
        return key.number_format.format(seq=value, year=key.year, month=key.month)
    except (KeyError, ValueError, IndexError) as error:
        raise NumberingError(
            gettext("The number format %(number_format)r is invalid (%(error)s); use e.g. INV-{year}-{seq:06d}.")
            % {"number_format": key.number_format, "error": error}
        ) from error


def _check_no_clash(*, brand: Brand, kind: str, key: SeriesKey) -> None:
    format_field = _FORMAT_FIELD[kind]
    clash = Brand.objects.exclude(pk=brand.pk).filter(**{format_field: key.number_format}).values_list("name").first()
    if clash is not None:
        raise NumberingError(
            gettext(
                "The brands %(name)s and %(clash)s share the number format %(number_format)r: "
                "numbers are unique across brands, so give each brand its own prefix."
            )
            % {"name": brand.name, "clash": clash[0], "number_format": key.number_format}
        )


@dataclass(slots=True)
class LockedSeries:
    """A series whose sequence row this transaction holds locked, and the issue instant read under it."""

    sequence: NumberSequence
    key: SeriesKey
    kind: str
    issued_at: datetime
    test_mode: bool

    def numbers(self, count: int) -> list[str]:
        first = self.sequence.last_value + 1
        return [_format(self.key, value) for value in range(first, first + count)]


def _issue_instant(*, sequence: NumberSequence, moment: datetime, from_caller: bool, test_mode: bool) -> datetime:
    last = sequence.last_issued_at
    if test_mode or last is None or moment >= last:
        return moment
    if not from_caller:
        return last  # the clock stepped back (NTP): keep the series in date order
    if last - moment <= timedelta(seconds=settings.TARIF_ISSUE_CLOCK_TOLERANCE_SECONDS):
        return last  # a reading taken before the lock, overtaken by a concurrent finalization
    raise NumberingError(
        gettext(
            "This document would be dated %(date)s, before the last one of its series (%(last)s): a "
            "number series is chronological, so a document cannot be backdated."
        )
        % {"date": moment.isoformat(), "last": last.isoformat()}
    )


@transaction.atomic(savepoint=False)
def number_series_lock(
    *,
    brand: Brand,
    kind: str,
    at: datetime | None = None,
    test_mode: bool = False,
    now: Callable[[], datetime] | None = None,
) -> LockedSeries:
    """Lock the series a document issued now (or at `at`) belongs to; read the issue instant under the lock.

    `now` is the billing clock to read (a customer's test clock included) when `at` is None.
    Queries: the ledger's chart and period checks, the brand-clash check and the locked read (plus the insert
    of the sequence row the first time a scope is used, and the chart the brand's first time).
    """
    if at is not None and at.tzinfo is None:
        raise NumberingError("The issue date must be an aware datetime (UTC in the database).")
    now = now or clock.system_now
    moment = at if at is not None else now()
    ledger_brand_ready(brand_id=brand.pk, at=moment)  # before the lock: see its docstring
    while True:
        key = number_series_key(brand=brand, kind=kind, at=moment, test_mode=test_mode)
        _check_no_clash(brand=brand, kind=kind, key=key)
        sequence, _ = number_sequence_qs_for_update().get_or_create(brand=brand, kind=kind, scope=key.scope)
        if at is None:
            moment = now()  # under the lock: nobody can take a number of this series before we commit
            if number_series_key(brand=brand, kind=kind, at=moment, test_mode=test_mode).scope != key.scope:
                continue  # the wait crossed into a new series (a new year): lock that one instead
        issued_at = _issue_instant(sequence=sequence, moment=moment, from_caller=at is not None, test_mode=test_mode)
        return LockedSeries(sequence=sequence, key=key, kind=kind, issued_at=issued_at, test_mode=test_mode)


def number_series_commit(
    *, series: LockedSeries, content_hashes: Sequence[str], issued_at: datetime | None = None
) -> list[tuple[str, str]]:
    """Take `len(content_hashes)` numbers of the locked series and chain their documents.

    The documents carry `series.numbers(count)` in that order and these content hashes.
    Returns each document's (chain_previous, chain_hash). One UPDATE of the sequence row.
    """
    count = len(content_hashes)
    if count < 1:
        raise NumberingError("Issue at least one document.")
    sequence = series.sequence
    previous = sequence.chain_head
    links = []
    for number, content_hash in zip(series.numbers(count), content_hashes, strict=True):
        link = chain_link(previous=previous, kind=series.kind, number=number, content_hash=content_hash)
        links.append((previous, link))
        previous = link
    last_issued_at = max(filter(None, (issued_at or series.issued_at, sequence.last_issued_at)))
    NumberSequence.objects.filter(pk=sequence.pk).update(
        last_value=F("last_value") + count, last_issued_at=last_issued_at, chain_head=previous
    )
    sequence.last_value += count
    sequence.last_issued_at = last_issued_at
    sequence.chain_head = previous
    return links


@transaction.atomic(savepoint=False)
def number_sequence_reserve(
    *, brand: Brand, kind: str, at: datetime, count: int = 1, test_mode: bool = False
) -> list[str]:
    """`count` consecutive numbers of `brand`'s `kind` series for documents issued `at`.

    Queries: the brand-clash check, the locked read, the increment (plus the insert of
    the sequence row the first time a scope is used) -- whatever `count` is.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise NumberingError(
            f"Reserve at least one number, not {count!r}."
        )  # untranslated: programmer error (kinds and counts come from code)
    key = number_series_key(brand=brand, kind=kind, at=at, test_mode=test_mode)
    format_field = _FORMAT_FIELD[kind]
    clash = Brand.objects.exclude(pk=brand.pk).filter(**{format_field: key.number_format}).values_list("name").first()
    if clash is not None:
        raise NumberingError(
            gettext(
                "The brands %(name)s and %(clash)s share the number format %(number_format)r: "
                "numbers are unique across brands, so give each brand its own prefix."
            )
            % {"name": brand.name, "clash": clash[0], "number_format": key.number_format}
        )
    sequence, _ = number_sequence_qs_for_update().get_or_create(brand=brand, kind=kind, scope=key.scope)
    # Under the lock the value read is current; the F() update keeps the counter honest anyway.
    NumberSequence.objects.filter(pk=sequence.pk).update(last_value=F("last_value") + count)
    first = sequence.last_value + 1
    return [_format(key, value) for value in range(first, first + count)]


def number_series_peek(*, brand: Brand, kind: str, at: datetime, test_mode: bool = False) -> str:
    """The number the next document of the series would take if issued `at`: read only.

    Nothing is locked or reserved (a confirmation page shows it before finalizing): a
    concurrent finalization may take it first, and then the document gets the next one.
    """
    key = number_series_key(brand=brand, kind=kind, at=at, test_mode=test_mode)
    last_value = (
        NumberSequence.objects.filter(brand=brand, kind=kind, scope=key.scope)
        .values_list("last_value", flat=True)
        .first()
    )
    return _format(key, (last_value or 0) + 1)
