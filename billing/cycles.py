"""Billing cycles: where a subscription's billing periods start and end.

Pure Python with no Django import, so the billing run, proration, MRR reports and
the Price model's JSONField validation all share one implementation.

A ``CycleSpec`` is one of two families:

* ``interval`` -- every N days, weeks, months or years from the subscription's
  anchor. Boundary k is ``anchor + k * N units`` computed from the anchor every
  time, never by adding one period to the previous boundary, so a cycle anchored
  on 31 Jan goes 28/29 Feb -> 31 Mar -> 30 Apr -> 31 May instead of sticking to
  the 28th after February. The anchor's wall-clock time is kept in the customer's
  time zone, so a cycle anchored at local midnight stays at local midnight across
  daylight-saving changes (its periods are then an hour shorter or longer).

* calendar kinds -- ``twice_monthly``, ``explicit_dates``, ``day_of_month`` and
  ``last_business_day``. Boundaries are local midnight of each qualifying date in
  the customer's time zone, and the anchor is ignored: every customer on a
  "25th of the month" plan is billed on the same days whenever they signed up.
  Days 29-31 clamp to the month's last day, and a business-day rule can move a
  date that falls on a weekend (Saturday or Sunday) or a public holiday of a
  country from the ``holidays`` package to the previous or next business day.

Turning a local wall-clock time into an instant uses one rule everywhere: the
boundary is the first instant at which the customer's clock shows that time or
later. For an ambiguous time (clocks turned back) that is the first occurrence;
for a time skipped by clocks going forward it is the instant the clocks jumped.
The rule is monotone, so consecutive periods never overlap and leave no gap.

Every datetime argument must be timezone-aware; every returned datetime is in UTC.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.relativedelta import relativedelta

from config.errors import DomainError
from config.errors import translate as _

__all__ = [
    "AnchorConfig",
    "CycleSpec",
    "CycleSpecError",
    "Period",
    "RuleAnchor",
    "anchor_from_config",
    "boundaries_between",
    "iter_periods",
    "next_boundary",
    "period_containing",
]

INTERVAL = "interval"
TWICE_MONTHLY = "twice_monthly"
EXPLICIT_DATES = "explicit_dates"
DAY_OF_MONTH = "day_of_month"
LAST_BUSINESS_DAY = "last_business_day"
KINDS = (INTERVAL, TWICE_MONTHLY, EXPLICIT_DATES, DAY_OF_MONTH, LAST_BUSINESS_DAY)

UNITS = ("day", "week", "month", "year")
BUSINESS_DAY_RULES = ("none", "previous", "next")

# In `days`, -1 means the month's last day. 31 means the same thing once clamped,
# but -1 says what the customer asked for ("payday is the last day").
LAST_DAY = -1

# Ten years is longer than any plan we sell; the cap catches typos such as
# `every(12, "year")` meant as `every(12, "month")`, and keeps date arithmetic
# far from datetime's year 9999 limit.
MAX_COUNT_PER_UNIT = {"day": 3660, "week": 520, "month": 120, "year": 10}

# calendar.month_abbr follows the process locale; plan labels must not.
_MONTH_ABBREVIATIONS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip

_FIELD_NAMES = frozenset(
    {
        "kind",
        "unit",
        "count",
        "days",
        "dates",
        "business_day",
        "holiday_country",
        "holiday_subdivision",
    }
)


class CycleSpecError(DomainError, ValueError):
    """A cycle specification or time zone that cannot be billed.

    ``field`` names the offending CycleSpec field (or ``"tz"``) so an API can point
    at it; the message is meant for the person who typed the plan.
    """

    code = "invalid_cycle"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class CycleSpec:
    """How often a price bills. Build one with the classmethod constructors.

    Every field is validated on construction, so an existing CycleSpec is always
    billable. ``twice_monthly`` days are stored in calendar order; ``explicit_dates``
    keep the order given, because it is how customers read their plan ("1 Sep and
    1 Feb" for a school year).
    """

    kind: str
    unit: str | None = None
    count: int = 1
    days: tuple[int, ...] = ()
    dates: tuple[tuple[int, int], ...] = ()
    business_day: str = "none"
    holiday_country: str | None = None
    holiday_subdivision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CycleSpecError(
                _("kind: %(kind)r is not one of %(kinds)s.") % {"kind": self.kind, "kinds": ", ".join(KINDS)},
                field="kind",
            )
        # JSON gives lists; tuples keep the spec hashable (it keys the date caches).
        object.__setattr__(self, "days", _int_tuple(self.days))
        object.__setattr__(self, "dates", _month_day_pairs(self.dates))
        if self.kind == INTERVAL:
            self._check_interval_fields()
        else:
            self._check_calendar_fields()
        self._check_holiday_fields()

    # -- constructors -------------------------------------------------------

    @classmethod
    def every(cls, count: int, unit: str) -> CycleSpec:
        """Every `count` days, weeks, months or years from the anchor."""
        return cls(kind=INTERVAL, unit=unit, count=count)

    @classmethod
    def weekly(cls) -> CycleSpec:
        return cls.every(1, "week")

    @classmethod
    def monthly(cls) -> CycleSpec:
        return cls.every(1, "month")

    @classmethod
    def quarterly(cls) -> CycleSpec:
        return cls.every(3, "month")

    @classmethod
    def semiannual(cls) -> CycleSpec:
        return cls.every(6, "month")

    @classmethod
    def yearly(cls) -> CycleSpec:
        return cls.every(1, "year")

    @classmethod
    def twice_monthly(
        cls,
        first: int,
        second: int,
        *,
        business_day: str = "none",
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
    ) -> CycleSpec:
        """On two fixed days of every month; -1 is the month's last day."""
        return cls(
            kind=TWICE_MONTHLY,
            days=(first, second),
            business_day=business_day,
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
        )

    @classmethod
    def explicit_dates(
        cls,
        dates: Sequence[tuple[int, int]],
        *,
        business_day: str = "none",
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
    ) -> CycleSpec:
        """On the same (month, day) dates every year, e.g. [(9, 1), (2, 1)]."""
        return cls(
            kind=EXPLICIT_DATES,
            dates=tuple(dates),
            business_day=business_day,
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
        )

    @classmethod
    def day_of_month(
        cls,
        day: int,
        *,
        business_day: str = "none",
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
    ) -> CycleSpec:
        """On one day of every month (a payday plan); -1 is the month's last day."""
        return cls(
            kind=DAY_OF_MONTH,
            days=(day,),
            business_day=business_day,
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
        )

    @classmethod
    def last_business_day(
        cls, *, holiday_country: str | None = None, holiday_subdivision: str | None = None
    ) -> CycleSpec:
        """On the last weekday of every month that is not a public holiday."""
        return cls(
            kind=LAST_BUSINESS_DAY,
            business_day="previous",
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
        )

    # -- serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict with every field, for Price's JSONField."""
        return {
            "kind": self.kind,
            "unit": self.unit,
            "count": self.count,
            "days": list(self.days),
            "dates": [list(pair) for pair in self.dates],
            "business_day": self.business_day,
            "holiday_country": self.holiday_country,
            "holiday_subdivision": self.holiday_subdivision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CycleSpec:
        """Rebuild a spec from `to_dict` output (missing fields take their defaults).

        Raises CycleSpecError naming the first bad field.
        """
        if not isinstance(data, Mapping):
            raise CycleSpecError(_("A cycle spec is a JSON object, not %(type)s.") % {"type": type(data).__name__})
        unknown = sorted(str(key) for key in data if key not in _FIELD_NAMES)
        if unknown:
            raise CycleSpecError(
                _("%(unknown)s: not a cycle spec field (expected some of %(fields)s).")
                % {"unknown": unknown[0], "fields": ", ".join(sorted(_FIELD_NAMES))},
                field=unknown[0],
            )
        if "kind" not in data:
            raise CycleSpecError(_("kind: missing."), field="kind")
        return cls(**data)

    # -- reporting ----------------------------------------------------------

    def describe(self) -> str:
        """A short English label such as "every 3 months" or "on the 1st and 15th"."""
        if self.kind == INTERVAL:
            unit = str(self.unit)
            return f"every {unit}" if self.count == 1 else f"every {self.count} {unit}s"
        if self.kind == LAST_BUSINESS_DAY:
            return "on the last business day" + self._holiday_calendar_label()
        if self.kind == EXPLICIT_DATES:
            label = "on " + _join_english([f"{day} {_MONTH_ABBREVIATIONS[month - 1]}" for month, day in self.dates])
        else:
            label = "on the " + _join_english([_ordinal_day(day) for day in self.days])
        if self.business_day != "none":
            label += f", or the {self.business_day} business day"
        return label + self._holiday_calendar_label()

    def periods_per_year(self) -> Fraction:
        """How many periods fit in a year on average, to normalise prices to MRR.

        Days and weeks use the Julian year of 365.25 days (1461/4), so a weekly price
        times this is the average yearly revenue over leap and common years alike.
        Calendar kinds count their nominal dates, ignoring the rare year where a
        business-day shift or a short February merges two of them.
        """
        if self.kind == INTERVAL:
            per_year = {
                "day": Fraction(1461, 4),
                "week": Fraction(1461, 28),
                "month": Fraction(12),
                "year": Fraction(1),
            }[str(self.unit)]
            return per_year / self.count
        if self.kind == TWICE_MONTHLY:
            return Fraction(24)
        if self.kind == EXPLICIT_DATES:
            return Fraction(len(self.dates))
        return Fraction(12)

    # -- validation ---------------------------------------------------------

    def _check_interval_fields(self) -> None:
        if self.unit not in UNITS:
            raise CycleSpecError(
                _("unit: %(unit)r is not one of %(units)s.") % {"unit": self.unit, "units": ", ".join(UNITS)},
                field="unit",
            )
        max_count = MAX_COUNT_PER_UNIT[str(self.unit)]
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 1 <= self.count <= max_count:
            raise CycleSpecError(
                _("count: must be a whole number from 1 to %(max_count)s for unit %(unit)r, got %(count)r.")
                % {"max_count": max_count, "unit": self.unit, "count": self.count},
                field="count",
            )
        if self.days:
            raise CycleSpecError(_("days: only calendar cycles have days."), field="days")
        if self.dates:
            raise CycleSpecError(_("dates: only explicit_dates cycles have dates."), field="dates")
        if self.business_day != "none":
            raise CycleSpecError(
                _(
                    "business_day: an interval cycle keeps the anchor's rhythm; business-day "
                    "rules only apply to calendar cycles."
                ),
                field="business_day",
            )

    def _check_calendar_fields(self) -> None:
        if self.unit is not None:
            raise CycleSpecError(_("unit: only interval cycles have a unit."), field="unit")
        if self.count != 1 or isinstance(self.count, bool):
            raise CycleSpecError(_("count: only interval cycles have a count."), field="count")
        if self.kind != EXPLICIT_DATES and self.dates:
            raise CycleSpecError(_("dates: only explicit_dates cycles have dates."), field="dates")
        if self.kind in (EXPLICIT_DATES, LAST_BUSINESS_DAY) and self.days:
            raise CycleSpecError(_("days: a %(kind)s cycle has no days.") % {"kind": self.kind}, field="days")
        if self.kind == TWICE_MONTHLY:
            self._check_twice_monthly_days()
        elif self.kind == DAY_OF_MONTH:
            if len(self.days) != 1:
                raise CycleSpecError(
                    _("days: a day_of_month cycle has exactly one day, got %(days)s.") % {"days": list(self.days)},
                    field="days",
                )
            _check_day_of_month(self.days[0])
        elif self.kind == EXPLICIT_DATES:
            self._check_explicit_dates()
        else:
            self._check_last_business_day_rule()
        if self.business_day not in BUSINESS_DAY_RULES:
            raise CycleSpecError(
                _("business_day: %(business_day)r is not one of %(rules)s.")
                % {"business_day": self.business_day, "rules": ", ".join(BUSINESS_DAY_RULES)},
                field="business_day",
            )

    def _check_twice_monthly_days(self) -> None:
        if len(self.days) != 2:
            raise CycleSpecError(
                _("days: a twice_monthly cycle has exactly two days, got %(days)s.") % {"days": list(self.days)},
                field="days",
            )
        for day in self.days:
            _check_day_of_month(day)
        # 31 and -1 clamp to the same date in every month.
        first, second = sorted(self.days, key=_day_sort_key)
        if _day_sort_key(first) == _day_sort_key(second):
            raise CycleSpecError(_("days: %(days)s is the same day twice.") % {"days": list(self.days)}, field="days")
        object.__setattr__(self, "days", (first, second))

    def _check_explicit_dates(self) -> None:
        if not self.dates:
            raise CycleSpecError(
                _("dates: an explicit_dates cycle needs at least one (month, day)."),
                field="dates",
            )
        for month, day in self.dates:
            if not _is_plain_int(month) or not 1 <= month <= 12:
                raise CycleSpecError(_("dates: month %(month)r is not from 1 to 12.") % {"month": month}, field="dates")
            # 2000 is a leap year, so 29 Feb is accepted; it clamps to 28 Feb in
            # common years like any day past a month's end.
            longest = (date(2000, month, 1) + relativedelta(day=31)).day
            if not _is_plain_int(day) or not 1 <= day <= longest:
                raise CycleSpecError(
                    _("dates: %(day)r %(month)s is not a date.")
                    % {"day": day, "month": _MONTH_ABBREVIATIONS[month - 1]},
                    field="dates",
                )
        if len(set(self.dates)) != len(self.dates):
            raise CycleSpecError(_("dates: the same (month, day) is listed twice."), field="dates")

    def _check_last_business_day_rule(self) -> None:
        # The kind implies rolling back from the month's last day; storing "previous"
        # makes the stored spec say what it does.
        if self.business_day == "none":
            object.__setattr__(self, "business_day", "previous")
        if self.business_day != "previous":
            raise CycleSpecError(
                _(
                    "business_day: a last_business_day cycle always rolls back to the previous "
                    "business day, got %(business_day)r."
                )
                % {"business_day": self.business_day},
                field="business_day",
            )

    def _check_holiday_fields(self) -> None:
        if self.holiday_subdivision is not None and self.holiday_country is None:
            raise CycleSpecError(_("holiday_subdivision: needs a holiday_country."), field="holiday_subdivision")
        if self.holiday_country is None:
            return
        if not isinstance(self.holiday_country, str) or not self.holiday_country:
            raise CycleSpecError(
                _("holiday_country: %(holiday_country)r is not a country code.")
                % {"holiday_country": self.holiday_country},
                field="holiday_country",
            )
        if self.business_day == "none":
            raise CycleSpecError(
                _("holiday_country: has no effect unless business_day is 'previous' or 'next'."),
                field="holiday_country",
            )
        object.__setattr__(self, "holiday_country", self.holiday_country.upper())
        if self.holiday_subdivision is not None and not (
            isinstance(self.holiday_subdivision, str) and self.holiday_subdivision
        ):
            raise CycleSpecError(
                _("holiday_subdivision: %(holiday_subdivision)r is not a subdivision code.")
                % {"holiday_subdivision": self.holiday_subdivision},
                field="holiday_subdivision",
            )
        for field, subdivision in (
            ("holiday_country", None),
            ("holiday_subdivision", self.holiday_subdivision),
        ):
            problem = _holiday_calendar_problem(self.holiday_country, subdivision)
            if problem is not None:
                raise CycleSpecError(_("%(field)s: %(problem)s.") % {"field": field, "problem": problem}, field=field)

    def _holiday_calendar_label(self) -> str:
        if self.holiday_country is None:
            return ""
        if self.holiday_subdivision is None:
            return f" ({self.holiday_country})"
        return f" ({self.holiday_country}-{self.holiday_subdivision})"


@dataclass(frozen=True, slots=True)
class Period:
    """A billing period: from `start` (inclusive) to `end` (exclusive), both in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = _as_utc(self.start, name="start")
        end = _as_utc(self.end, name="end")
        if end <= start:
            raise ValueError(f"A period ends after it starts: {start} -> {end}.")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def seconds(self) -> int:
        """Length in whole seconds; 3600 less than usual across a spring-forward change."""
        return (self.end - self.start) // timedelta(seconds=1)

    def contains(self, at: datetime) -> bool:
        at = _as_utc(at, name="at")
        return self.start <= at < self.end


def period_containing(spec: CycleSpec, *, anchor: datetime, tz: str, at: datetime) -> Period:
    """The period with start <= at < end; an `at` on a boundary starts a new period."""
    start, end = _bracket(spec, anchor, tz, _as_utc(at, name="at"))
    return Period(start=start, end=end)


def next_boundary(spec: CycleSpec, *, anchor: datetime, tz: str, after: datetime) -> datetime:
    """The first boundary strictly after `after`."""
    return _bracket(spec, anchor, tz, _as_utc(after, name="after"))[1]


@lru_cache(maxsize=65536)
def _bracket(spec: CycleSpec, anchor: datetime, tz: str, at: datetime) -> tuple[datetime, datetime]:
    # Pure and hot: a billing-run chunk asks the same question for every subscription
    # sharing a cycle, anchor and time zone.
    return _timeline(spec, anchor=anchor, tz=tz).bracket(at=at)


def iter_periods(spec: CycleSpec, *, anchor: datetime, tz: str, start: datetime) -> Iterator[Period]:
    """The period containing `start`, then each following period, forever."""
    start = _as_utc(start, name="start")
    # Validate now rather than on the first next(): a generator body runs lazily.
    timeline = _timeline(spec, anchor=anchor, tz=tz)

    def periods() -> Iterator[Period]:
        period_start, period_end = timeline.bracket(at=start)
        while True:
            yield Period(start=period_start, end=period_end)
            period_start, period_end = period_end, timeline.bracket(at=period_end)[1]

    return periods()


def boundaries_between(spec: CycleSpec, *, anchor: datetime, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every boundary b with start <= b < end, in order."""
    start = _as_utc(start, name="start")
    end = _as_utc(end, name="end")
    if end < start:
        raise ValueError(f"boundaries_between: end {end} is before start {start}.")
    timeline = _timeline(spec, anchor=anchor, tz=tz)
    at_or_before, boundary = timeline.bracket(at=start)
    if at_or_before == start:
        boundary = at_or_before
    boundaries = []
    while boundary < end:
        boundaries.append(boundary)
        boundary = timeline.bracket(at=boundary)[1]
    return boundaries


# -- anchors from a rule (Stripe's billing_cycle_anchor_config) -----------------

_ANCHOR_CONFIG_FIELDS = ("day_of_month", "month", "hour", "minute", "second")
_ANCHOR_CONFIG_RANGES = {
    "day_of_month": (1, 31),
    "month": (1, 12),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
}


@dataclass(frozen=True, slots=True)
class AnchorConfig:
    """ "Bill on day N (of month M), at hh:mm:ss": a rule that picks a subscription's anchor.

    Day 29-31 in a shorter month is that month's last day (Stripe's rule). The time of
    day defaults to the creation's local time; `month` only applies to cycles longer
    than a month (yearly: the month of the year; every 3 months: one of the months).
    """

    day_of_month: int
    month: int | None = None
    hour: int | None = None
    minute: int | None = None
    second: int | None = None

    def __post_init__(self) -> None:
        for name in _ANCHOR_CONFIG_FIELDS:
            value = getattr(self, name)
            if value is None and name != "day_of_month":
                continue
            low, high = _ANCHOR_CONFIG_RANGES[name]
            if not _is_plain_int(value) or not low <= value <= high:
                raise CycleSpecError(
                    _("%(name)s: must be a whole number from %(low)s to %(high)s, got %(value)r.")
                    % {"name": name, "low": low, "high": high, "value": value},
                    field=name,
                )

    def to_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in _ANCHOR_CONFIG_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnchorConfig:
        if not isinstance(data, Mapping):
            raise CycleSpecError(_('An anchor rule is a JSON object such as {"day_of_month": 31}.'))
        unknown = sorted(str(key) for key in data if key not in _ANCHOR_CONFIG_FIELDS)
        if unknown:
            raise CycleSpecError(
                _("%(unknown)s: not an anchor rule field.") % {"unknown": unknown[0]}, field=unknown[0]
            )
        if data.get("day_of_month") is None:
            raise CycleSpecError(_("day_of_month: missing."), field="day_of_month")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RuleAnchor:
    """Where a rule puts a subscription's billing dates.

    `first_boundary` is the first billing date at or after the start. `anchor` is the
    instant the cycle's dates are counted from: the first boundary itself, or, when
    that date was clamped (day 31 in April), the latest earlier boundary that falls on
    the day asked for, so that later months go back to the 31st instead of staying on
    the 30th. It may therefore precede the subscription's creation.
    """

    anchor: datetime
    first_boundary: datetime


def anchor_from_config(spec: CycleSpec, config: AnchorConfig, *, tz: str, start: datetime) -> RuleAnchor:
    """The anchor that makes `spec` bill on the days `config` names, from `start` on.

    Only monthly and longer interval cycles have a day of the month to choose: weekly
    and daily cycles have none, and calendar cycles (twice monthly, explicit dates,
    payday) already bill on fixed dates, so a rule is refused for them.
    """
    start = _as_utc(start, name="start")
    zone = _zone(tz)
    if spec.kind != INTERVAL:
        raise CycleSpecError(
            _(
                "billing_cycle_anchor_config: a %(kind)s cycle bills on its own calendar dates; an "
                "anchor rule only applies to monthly or yearly cycles."
            )
            % {"kind": spec.kind},
            field="billing_cycle_anchor_config",
        )
    if spec.unit not in ("month", "year"):
        raise CycleSpecError(
            _(
                "billing_cycle_anchor_config: a cycle of every %(count)s %(unit)s(s) has no day of "
                "the month to bill on; an anchor rule only applies to monthly or yearly cycles."
            )
            % {"count": spec.count, "unit": spec.unit},
            field="billing_cycle_anchor_config",
        )
    step_months = spec.count * (12 if spec.unit == "year" else 1)
    if config.month is not None and step_months == 1:
        raise CycleSpecError(
            _("month: a monthly cycle bills every month; a month only applies to cycles of several months or years."),
            field="month",
        )
    local_start = start.astimezone(zone)
    time_of_day = (
        local_start.hour if config.hour is None else config.hour,
        local_start.minute if config.minute is None else config.minute,
        local_start.second if config.second is None else config.second,
    )

    def boundary_in(year: int, month: int, *, clamp: bool = True) -> datetime | None:
        last_day = (date(year, month, 1) + relativedelta(day=31)).day
        if not clamp and config.day_of_month > last_day:
            return None
        wall = datetime.combine(date(year, month, min(config.day_of_month, last_day)), time(*time_of_day))
        return _first_instant_showing(wall, zone=zone)

    # A yearly cycle takes the rule's month of the year; one of several months takes the
    # rule's month as one of its billing months (every 3 months from February: Feb, May, ...).
    phase_months = 12 if spec.unit == "year" else step_months

    def month_allowed(month_index: int) -> bool:
        # month_index counts months from year 0.
        return config.month is None or (month_index - (config.month - 1)) % phase_months == 0

    index = local_start.year * 12 + local_start.month - 1
    first = None
    for candidate in range(index, index + step_months + 13):
        if not month_allowed(candidate):
            continue
        boundary = boundary_in(candidate // 12, candidate % 12 + 1)
        if boundary is not None and boundary >= start:
            first, index = boundary, candidate
            break
    assert first is not None, "a month within one cycle always qualifies"
    anchor = first
    if first.astimezone(zone).day != config.day_of_month:
        # Clamped: count from the latest earlier date that has the day (within 8 cycles),
        # when the cycle's own arithmetic brings the same first boundary back.
        for back in range(1, 9):
            earlier_index = index - back * step_months
            earlier = boundary_in(earlier_index // 12, earlier_index % 12 + 1, clamp=False)
            if earlier is None:
                continue
            if _bracket(spec, earlier, tz, first)[0] == first:
                anchor = earlier
            break
    return RuleAnchor(anchor=anchor, first_boundary=first)


# -- timelines ---------------------------------------------------------------
#
# A timeline answers one question: for a UTC instant `at`, the last boundary at or
# before it and the first boundary after it. Everything public is built on that.


@dataclass(frozen=True, slots=True)
class _IntervalTimeline:
    spec: CycleSpec
    zone: ZoneInfo
    anchor: datetime  # UTC
    anchor_wall: datetime  # naive local wall-clock time of the anchor

    def bracket(self, *, at: datetime) -> tuple[datetime, datetime]:
        # The billing run asks this for every subscription, so estimate the index
        # arithmetically and correct by a step, instead of walking from the anchor.
        index = self._estimated_index(wall=at.astimezone(self.zone).replace(tzinfo=None))
        start = self._boundary(index)
        while start > at:
            index -= 1
            start = self._boundary(index)
        end = self._boundary(index + 1)
        # Stepping while `end <= at` also skips boundaries that a skipped local day
        # resolves to the same instant (Samoa skipped 30 Dec 2011), so the period
        # always ends strictly after `at`.
        while end <= at:
            index += 1
            start, end = end, self._boundary(index + 1)
        return start, end

    def _estimated_index(self, *, wall: datetime) -> int:
        unit, count = self.spec.unit, self.spec.count
        if unit in ("month", "year"):
            months = (wall.year - self.anchor_wall.year) * 12 + wall.month - self.anchor_wall.month
            return months // (count * (12 if unit == "year" else 1))
        step = timedelta(days=count * (7 if unit == "week" else 1))
        return (wall - self.anchor_wall) // step

    def _boundary(self, index: int) -> datetime:
        if index == 0:
            # Exactly the anchor, even when its wall time is the second occurrence
            # of an ambiguous hour, so a subscription's first period starts on time.
            return self.anchor
        steps = index * self.spec.count
        if self.spec.unit == "month":
            wall = self.anchor_wall + relativedelta(months=steps)
        elif self.spec.unit == "year":
            wall = self.anchor_wall + relativedelta(years=steps)
        else:
            # Days and weeks have no month-end to clamp; timedelta is the same
            # arithmetic as relativedelta here, and cheaper in the billing run.
            wall = self.anchor_wall + timedelta(days=steps * (7 if self.spec.unit == "week" else 1))
        return _first_instant_showing(wall, zone=self.zone)


@dataclass(frozen=True, slots=True)
class _CalendarTimeline:
    spec: CycleSpec
    zone: ZoneInfo

    def bracket(self, *, at: datetime) -> tuple[datetime, datetime]:
        local_day = at.astimezone(self.zone).date()
        days = _boundary_dates_around(self.spec, year=local_day.year)
        # The clock already shows `local_day`, so midnight of every date up to it
        # has passed.
        index = bisect.bisect_right(days, local_day) - 1
        # Where clocks turn back across midnight the local date can fall back to
        # yesterday after today's midnight has passed, so check the next dates too.
        while (following := self._midnight(days[index + 1])) <= at:
            index += 1
        return self._midnight(days[index]), following

    def _midnight(self, day: date) -> datetime:
        return _first_instant_showing(datetime.combine(day, time()), zone=self.zone)


def _timeline(spec: CycleSpec, *, anchor: datetime, tz: str) -> _IntervalTimeline | _CalendarTimeline:
    if not isinstance(spec, CycleSpec):
        raise TypeError(f"spec must be a CycleSpec, not {type(spec).__name__}")
    anchor = _as_utc(anchor, name="anchor")
    zone = _zone(tz)
    if spec.kind != INTERVAL:
        return _CalendarTimeline(spec=spec, zone=zone)
    return _IntervalTimeline(
        spec=spec,
        zone=zone,
        anchor=anchor,
        # fold=0: the wall time alone is what later boundaries repeat.
        anchor_wall=anchor.astimezone(zone).replace(tzinfo=None, fold=0),
    )


# -- calendar dates ----------------------------------------------------------


@lru_cache(maxsize=4096)
def _boundary_dates_around(spec: CycleSpec, *, year: int) -> tuple[date, ...]:
    """Sorted, distinct boundary dates generated from years `year - 2` to `year + 2`.

    Business-day shifts can push a date into the neighbouring year (1 Jan rolled
    back, 31 Dec rolled forward), so two years of margin on each side guarantee
    dates on both sides of any day of `year`.
    """
    shifted = {
        _shift_to_business_day(nominal, spec=spec)
        for nominal_year in range(year - 2, year + 3)
        for nominal in _nominal_dates(spec, year=nominal_year)
    }
    # Shifting never reorders dates, but it can merge two (the 30th and the last
    # day in February, a Saturday and the next Sunday rolled to Monday): keep one.
    return tuple(sorted(shifted))


def _nominal_dates(spec: CycleSpec, *, year: int) -> list[date]:
    if spec.kind == EXPLICIT_DATES:
        return [_clamped_date(year=year, month=month, day=day) for month, day in spec.dates]
    days = (LAST_DAY,) if spec.kind == LAST_BUSINESS_DAY else spec.days
    return [_clamped_date(year=year, month=month, day=day) for month in range(1, 13) for day in days]


def _clamped_date(*, year: int, month: int, day: int) -> date:
    # relativedelta(day=31) lands on the month's last day, whatever its length.
    return date(year, month, 1) + relativedelta(day=31 if day == LAST_DAY else day)


def _shift_to_business_day(day: date, *, spec: CycleSpec) -> date:
    if spec.business_day == "none":
        return day
    step = timedelta(days=-1 if spec.business_day == "previous" else 1)
    while not _is_business_day(day, country=spec.holiday_country, subdivision=spec.holiday_subdivision):
        day += step
    return day


def _is_business_day(day: date, *, country: str | None, subdivision: str | None) -> bool:
    if day.weekday() >= 5:
        return False
    return country is None or day not in _public_holidays(country, subdivision, day.year)


@lru_cache(maxsize=1024)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


@lru_cache(maxsize=256)
def _holiday_calendar_problem(country: str, subdivision: str | None) -> str | None:
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as error:
        # The holidays package explains itself: "Country XX not available",
        # "Entity `FR` does not have subdivision ZZ".
        return str(error)
    return None


# -- local time --------------------------------------------------------------


def _first_instant_showing(wall: datetime, *, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which a clock in `zone` shows `wall` or later.

    For an ordinary time that is its only instant; for an ambiguous one (clocks
    turned back) its first occurrence; for one that never happens (clocks jumped
    forward) the instant of the jump, i.e. the first valid instant after it.
    """
    # PEP 495: `fold` only matters around a change of offset; fold=0 reads the wall
    # time with the offset in force before the change, fold=1 with the one after.
    wall_fold0 = wall.replace(tzinfo=zone, fold=0)
    wall_fold1 = wall.replace(tzinfo=zone, fold=1)
    instant = wall_fold0.astimezone(UTC)
    if wall_fold0.utcoffset() == wall_fold1.utcoffset():
        return instant
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant  # ambiguous: fold=0 is the first occurrence
    # In a gap the old offset gives an instant after the jump and the new offset
    # one before it; the jump itself lies between them.
    return _offset_change_instant(zone=zone, before=wall_fold1.astimezone(UTC), after=instant)


def _offset_change_instant(*, zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in (before, after] at which `zone` takes after's UTC offset."""
    # tzdata transitions fall on whole seconds, so bisecting over seconds is exact
    # and takes about 12 steps for a one-hour jump. Gaps are rare; this is cold code.
    new_offset = after.astimezone(zone).utcoffset()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    low = (before - epoch) // timedelta(seconds=1)
    high = -((epoch - after) // timedelta(seconds=1))  # ceiling
    while high - low > 1:
        middle = (low + high) // 2
        if (epoch + timedelta(seconds=middle)).astimezone(zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return epoch + timedelta(seconds=high)


def _zone(tz: str) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise CycleSpecError(_("tz: %(tz)r is not an IANA time zone name.") % {"tz": tz}, field="tz")
    if tz == "localtime":
        # A file on the server, not a place: it would bill in the server's zone.
        raise CycleSpecError(
            _("tz: 'localtime' is the server's zone; use the customer's IANA name."),
            field="tz",
        )
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise CycleSpecError(
            _("tz: %(tz)r is not an IANA time zone name such as 'Europe/Paris'.") % {"tz": tz}, field="tz"
        ) from error


def _as_utc(value: datetime, *, name: str) -> datetime:
    """The instant `value` denotes, in UTC; rejects naive datetimes.

    Everything below works on UTC instants. Reading a local time straight off an
    argument is a trap: astimezone() to the argument's own zone returns it as-is,
    so a wall time skipped by daylight saving, or a repeated one with the other
    fold, would be taken at face value instead of as the instant it denotes.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware; a naive datetime has no instant to bill at.")
    return value.astimezone(UTC)


# -- small helpers -----------------------------------------------------------


def _is_plain_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_day_of_month(day: object) -> None:
    if isinstance(day, bool) or not isinstance(day, int) or not (1 <= day <= 31 or day == LAST_DAY):
        raise CycleSpecError(
            _("days: %(day)r is not a day of the month (1 to 31, or -1 for the last day).") % {"day": day},
            field="days",
        )


def _day_sort_key(day: int) -> int:
    return 31 if day == LAST_DAY else day


def _int_tuple(value: object) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise CycleSpecError(
            _("days: expected a list of days, got %(type)s.") % {"type": type(value).__name__}, field="days"
        )
    return tuple(value)


def _month_day_pairs(value: object) -> tuple[tuple[Any, Any], ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in value
    ):
        raise CycleSpecError(
            _("dates: expected a list of (month, day) pairs such as [[9, 1], [2, 1]]."),
            field="dates",
        )
    return tuple((month, day) for month, day in value)


def _ordinal_day(day: int) -> str:
    if day == LAST_DAY:
        return "last day"
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _join_english(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]
