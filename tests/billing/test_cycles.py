"""Billing cycles: hand-worked periods, invariants for any spec, and rejected input.

Plain functions with no database and no settings: billing.cycles is pure Python.
Expected datetimes are written out in UTC so the local-midnight arithmetic (23:00
or 22:00 UTC in Paris, 04:00 UTC in New York summer) is visible in the table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.cycles import (
    BUSINESS_DAY_RULES,
    MAX_COUNT_PER_UNIT,
    UNITS,
    CycleSpec,
    CycleSpecError,
    Period,
    boundaries_between,
    iter_periods,
    next_boundary,
    period_containing,
)

PARIS = ZoneInfo("Europe/Paris")
# Chile moves its clocks at midnight: 00:00 on 6 Sep 2026 never happens there.
SANTIAGO = ZoneInfo("America/Santiago")
# Calendar kinds ignore the anchor; an arbitrary one shows that it does not matter.
IGNORED_ANCHOR = datetime(2019, 7, 4, 15, 45, tzinfo=UTC)

MONTHLY = CycleSpec.monthly()
PAYDAY_25TH = CycleSpec.day_of_month(25)
FIRST_AND_15TH = CycleSpec.twice_monthly(1, 15)
FIFTEENTH_AND_LAST_DAY = CycleSpec.twice_monthly(15, -1)
SEMESTERS = CycleSpec.explicit_dates([(9, 1), (2, 1)])

HAND_WORKED_PERIODS = [
    # -- monthly anchored on the 31st, 30th, 29th: clamp, then return to the anchor day
    pytest.param(
        MONTHLY, datetime(2027, 1, 31, tzinfo=UTC), "UTC", datetime(2027, 2, 15, tzinfo=UTC),
        datetime(2027, 1, 31, tzinfo=UTC), datetime(2027, 2, 28, tzinfo=UTC),
        id="monthly-jan31-into-feb-common-year",
    ),
    pytest.param(
        MONTHLY, datetime(2027, 1, 31, tzinfo=UTC), "UTC", datetime(2027, 3, 10, tzinfo=UTC),
        datetime(2027, 2, 28, tzinfo=UTC), datetime(2027, 3, 31, tzinfo=UTC),
        id="monthly-jan31-from-feb28-back-to-mar31",
    ),
    pytest.param(
        MONTHLY, datetime(2028, 1, 31, tzinfo=UTC), "UTC", datetime(2028, 2, 15, tzinfo=UTC),
        datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC),
        id="monthly-jan31-into-feb-leap-year",
    ),
    pytest.param(
        MONTHLY, datetime(2028, 1, 31, tzinfo=UTC), "UTC", datetime(2028, 3, 5, tzinfo=UTC),
        datetime(2028, 2, 29, tzinfo=UTC), datetime(2028, 3, 31, tzinfo=UTC),
        id="monthly-jan31-from-feb29-back-to-mar31",
    ),
    pytest.param(
        MONTHLY, datetime(2028, 1, 31, tzinfo=UTC), "UTC", datetime(2028, 5, 10, tzinfo=UTC),
        datetime(2028, 4, 30, tzinfo=UTC), datetime(2028, 5, 31, tzinfo=UTC),
        id="monthly-jan31-from-apr30-back-to-may31",
    ),
    pytest.param(
        MONTHLY, datetime(2027, 1, 30, tzinfo=UTC), "UTC", datetime(2027, 3, 1, tzinfo=UTC),
        datetime(2027, 2, 28, tzinfo=UTC), datetime(2027, 3, 30, tzinfo=UTC),
        id="monthly-anchored-30th-across-feb",
    ),
    pytest.param(
        MONTHLY, datetime(2027, 1, 29, tzinfo=UTC), "UTC", datetime(2027, 2, 28, 12, tzinfo=UTC),
        datetime(2027, 2, 28, tzinfo=UTC), datetime(2027, 3, 29, tzinfo=UTC),
        id="monthly-anchored-29th-common-year",
    ),
    pytest.param(
        MONTHLY, datetime(2028, 1, 29, tzinfo=UTC), "UTC", datetime(2028, 2, 29, tzinfo=UTC),
        datetime(2028, 2, 29, tzinfo=UTC), datetime(2028, 3, 29, tzinfo=UTC),
        id="monthly-anchored-29th-leap-year",
    ),
    # -- quarterly, semi-annual, yearly from 29 Feb
    pytest.param(
        CycleSpec.quarterly(), datetime(2028, 2, 29, tzinfo=UTC), "UTC",
        datetime(2028, 6, 1, tzinfo=UTC),
        datetime(2028, 5, 29, tzinfo=UTC), datetime(2028, 8, 29, tzinfo=UTC),
        id="quarterly-from-feb29",
    ),
    pytest.param(
        CycleSpec.semiannual(), datetime(2028, 2, 29, tzinfo=UTC), "UTC",
        datetime(2028, 12, 1, tzinfo=UTC),
        datetime(2028, 8, 29, tzinfo=UTC), datetime(2029, 2, 28, tzinfo=UTC),
        id="semiannual-from-feb29-into-common-year",
    ),
    pytest.param(
        CycleSpec.yearly(), datetime(2028, 2, 29, tzinfo=UTC), "UTC",
        datetime(2029, 6, 1, tzinfo=UTC),
        datetime(2029, 2, 28, tzinfo=UTC), datetime(2030, 2, 28, tzinfo=UTC),
        id="yearly-from-feb29-common-year",
    ),
    pytest.param(
        CycleSpec.yearly(), datetime(2028, 2, 29, tzinfo=UTC), "UTC",
        datetime(2032, 3, 1, tzinfo=UTC),
        datetime(2032, 2, 29, tzinfo=UTC), datetime(2033, 2, 28, tzinfo=UTC),
        id="yearly-from-feb29-back-to-feb29-in-2032",
    ),
    pytest.param(
        CycleSpec.yearly(), datetime(2028, 2, 29, tzinfo=UTC), "UTC",
        datetime(2027, 6, 1, tzinfo=UTC),
        datetime(2027, 2, 28, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC),
        id="yearly-before-the-anchor",
    ),
    # -- days and weeks
    pytest.param(
        CycleSpec.weekly(), datetime(2026, 3, 2, 9, 30, tzinfo=UTC), "UTC",
        datetime(2026, 3, 20, tzinfo=UTC),
        datetime(2026, 3, 16, 9, 30, tzinfo=UTC), datetime(2026, 3, 23, 9, 30, tzinfo=UTC),
        id="weekly-keeps-the-anchor-time",
    ),
    pytest.param(
        CycleSpec.every(2, "week"), datetime(2026, 1, 5, tzinfo=UTC), "UTC",
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 1, 19, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC),
        id="biweekly",
    ),
    pytest.param(
        CycleSpec.every(10, "day"), datetime(2026, 1, 1, tzinfo=UTC), "UTC",
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 2, 20, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC),
        id="every-10-days",
    ),
    # -- daylight saving in Paris: local midnight is 23:00 UTC in winter, 22:00 in summer
    pytest.param(
        MONTHLY, datetime(2026, 1, 1, tzinfo=PARIS), "Europe/Paris",
        datetime(2026, 3, 15, tzinfo=UTC),
        datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC),
        id="monthly-paris-across-spring-forward",
    ),
    pytest.param(
        MONTHLY, datetime(2026, 1, 1, tzinfo=PARIS), "Europe/Paris",
        datetime(2026, 10, 15, tzinfo=UTC),
        datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC),
        id="monthly-paris-across-fall-back",
    ),
    pytest.param(
        CycleSpec.every(1, "day"), datetime(2026, 3, 1, 2, 30, tzinfo=PARIS), "Europe/Paris",
        datetime(2026, 3, 29, 12, tzinfo=UTC),
        # 02:30 never happens on 29 Mar: the boundary is the jump at 03:00 CEST.
        datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
        id="daily-paris-anchor-time-skipped-by-spring-forward",
    ),
    pytest.param(
        CycleSpec.every(1, "day"), datetime(2026, 3, 1, 2, 30, tzinfo=PARIS), "Europe/Paris",
        datetime(2026, 10, 25, 12, tzinfo=UTC),
        # 02:30 happens twice on 25 Oct: the boundary is the first, 02:30 CEST.
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        id="daily-paris-anchor-time-repeated-by-fall-back",
    ),
    pytest.param(
        CycleSpec.every(1, "day"), datetime(2026, 3, 29, 2, 30, fold=1, tzinfo=PARIS), "Europe/Paris",
        datetime(2026, 3, 30, 12, tzinfo=UTC),
        # A wall time that never happens, read with fold=1, denotes 00:30 UTC = 01:30 CET.
        datetime(2026, 3, 29, 23, 30, tzinfo=UTC), datetime(2026, 3, 30, 23, 30, tzinfo=UTC),
        id="daily-anchor-written-as-a-skipped-local-time",
    ),
    # -- twice monthly
    pytest.param(
        FIRST_AND_15TH, IGNORED_ANCHOR, "UTC", datetime(2026, 2, 20, tzinfo=UTC),
        datetime(2026, 2, 15, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC),
        id="twice-monthly-1st-and-15th",
    ),
    pytest.param(
        FIFTEENTH_AND_LAST_DAY, IGNORED_ANCHOR, "UTC", datetime(2026, 2, 20, tzinfo=UTC),
        datetime(2026, 2, 15, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC),
        id="twice-monthly-15th-and-last-day-feb-common-year",
    ),
    pytest.param(
        FIFTEENTH_AND_LAST_DAY, IGNORED_ANCHOR, "UTC", datetime(2028, 2, 29, 6, tzinfo=UTC),
        datetime(2028, 2, 29, tzinfo=UTC), datetime(2028, 3, 15, tzinfo=UTC),
        id="twice-monthly-15th-and-last-day-feb-leap-year",
    ),
    # -- explicit dates
    pytest.param(
        SEMESTERS, IGNORED_ANCHOR, "Europe/Paris", datetime(2026, 12, 10, tzinfo=UTC),
        datetime(2026, 8, 31, 22, tzinfo=UTC), datetime(2027, 1, 31, 23, tzinfo=UTC),
        id="semesters-1-sep-to-1-feb",
    ),
    pytest.param(
        SEMESTERS, IGNORED_ANCHOR, "Europe/Paris", datetime(2027, 5, 1, tzinfo=UTC),
        datetime(2027, 1, 31, 23, tzinfo=UTC), datetime(2027, 8, 31, 22, tzinfo=UTC),
        id="semesters-1-feb-to-1-sep",
    ),
    pytest.param(
        CycleSpec.explicit_dates([(2, 29)]), IGNORED_ANCHOR, "UTC",
        datetime(2027, 3, 1, tzinfo=UTC),
        datetime(2027, 2, 28, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC),
        id="explicit-feb29-clamps-in-common-year",
    ),
    # -- day of month (payday)
    pytest.param(
        PAYDAY_25TH, IGNORED_ANCHOR, "UTC", datetime(2026, 6, 1, tzinfo=UTC),
        datetime(2026, 5, 25, tzinfo=UTC), datetime(2026, 6, 25, tzinfo=UTC),
        id="payday-25th",
    ),
    pytest.param(
        PAYDAY_25TH, IGNORED_ANCHOR, "America/New_York", datetime(2026, 7, 1, tzinfo=UTC),
        datetime(2026, 6, 25, 4, tzinfo=UTC), datetime(2026, 7, 25, 4, tzinfo=UTC),
        id="payday-25th-new-york-local-midnight",
    ),
    pytest.param(
        CycleSpec.day_of_month(-1), IGNORED_ANCHOR, "UTC", datetime(2026, 2, 10, tzinfo=UTC),
        datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC),
        id="payday-last-day-of-month",
    ),
    pytest.param(
        CycleSpec.day_of_month(6), IGNORED_ANCHOR, "America/Santiago", datetime(2026, 9, 6, 12, tzinfo=UTC),
        # No midnight on 6 Sep: the day starts at 01:00 -03 when the clocks jump.
        datetime(2026, 9, 6, 4, tzinfo=UTC), datetime(2026, 10, 6, 3, tzinfo=UTC),
        id="payday-6th-santiago-midnight-skipped",
    ),
    pytest.param(
        CycleSpec.day_of_month(6), IGNORED_ANCHOR, "America/Santiago",
        # Written as 00:30 on 6 Sep, which never happens: it is 23:30 on 5 Sep (03:30 UTC).
        datetime(2026, 9, 6, 0, 30, fold=1, tzinfo=SANTIAGO),
        datetime(2026, 8, 6, 4, tzinfo=UTC), datetime(2026, 9, 6, 4, tzinfo=UTC),
        id="payday-at-written-as-a-skipped-local-time",
    ),
    pytest.param(
        CycleSpec.day_of_month(25, business_day="previous"), IGNORED_ANCHOR, "UTC",
        datetime(2026, 4, 24, 12, tzinfo=UTC),
        # Sat 25 Apr 2026 -> Fri 24 Apr.
        datetime(2026, 4, 24, tzinfo=UTC), datetime(2026, 5, 25, tzinfo=UTC),
        id="payday-25th-saturday-rolls-back-to-friday",
    ),
    pytest.param(
        CycleSpec.day_of_month(25, business_day="previous"), IGNORED_ANCHOR, "UTC",
        datetime(2026, 1, 24, tzinfo=UTC),
        # Sun 25 Jan 2026 -> Fri 23 Jan.
        datetime(2026, 1, 23, tzinfo=UTC), datetime(2026, 2, 25, tzinfo=UTC),
        id="payday-25th-sunday-rolls-back-to-friday",
    ),
    pytest.param(
        CycleSpec.day_of_month(25, business_day="next"), IGNORED_ANCHOR, "UTC",
        datetime(2026, 4, 26, tzinfo=UTC),
        # Sat 25 Apr 2026 -> Mon 27 Apr.
        datetime(2026, 3, 25, tzinfo=UTC), datetime(2026, 4, 27, tzinfo=UTC),
        id="payday-25th-saturday-rolls-forward-to-monday",
    ),
    # -- French public holidays
    pytest.param(
        CycleSpec.day_of_month(25, business_day="previous", holiday_country="FR"),
        IGNORED_ANCHOR, "Europe/Paris", datetime(2026, 5, 23, tzinfo=UTC),
        # Mon 25 May 2026 is Whit Monday in France -> Fri 22 May.
        datetime(2026, 5, 21, 22, tzinfo=UTC), datetime(2026, 6, 24, 22, tzinfo=UTC),
        id="payday-25th-fr-whit-monday-rolls-back",
    ),
    pytest.param(
        CycleSpec.last_business_day(holiday_country="FR"), IGNORED_ANCHOR, "Europe/Paris",
        datetime(2026, 5, 15, tzinfo=UTC),
        # Thu 30 Apr 2026; Sun 31 May -> Fri 29 May.
        datetime(2026, 4, 29, 22, tzinfo=UTC), datetime(2026, 5, 28, 22, tzinfo=UTC),
        id="last-business-day-may-2026-fr",
    ),
    pytest.param(
        CycleSpec.day_of_month(1, business_day="next", holiday_country="FR"),
        IGNORED_ANCHOR, "Europe/Paris", datetime(2026, 5, 2, tzinfo=UTC),
        # Fri 1 May 2026 is Labour Day -> Mon 4 May, past the weekend.
        datetime(2026, 3, 31, 22, tzinfo=UTC), datetime(2026, 5, 3, 22, tzinfo=UTC),
        id="fr-labour-day-rolls-forward",
    ),
    pytest.param(
        CycleSpec.day_of_month(1, business_day="previous", holiday_country="FR"),
        IGNORED_ANCHOR, "Europe/Paris", datetime(2026, 5, 2, tzinfo=UTC),
        # Fri 1 May 2026 is Labour Day -> Thu 30 Apr.
        datetime(2026, 4, 29, 22, tzinfo=UTC), datetime(2026, 5, 31, 22, tzinfo=UTC),
        id="fr-labour-day-rolls-back",
    ),
    pytest.param(
        CycleSpec.explicit_dates([(12, 25)], business_day="previous", holiday_country="FR"),
        IGNORED_ANCHOR, "Europe/Paris", datetime(2026, 12, 24, 12, tzinfo=UTC),
        # Fri 25 Dec 2026 -> Thu 24 Dec; Sat 25 Dec 2027 -> Fri 24 Dec.
        datetime(2026, 12, 23, 23, tzinfo=UTC), datetime(2027, 12, 23, 23, tzinfo=UTC),
        id="fr-christmas-rolls-back",
    ),
    pytest.param(
        CycleSpec.day_of_month(25, business_day="next", holiday_country="FR"),
        IGNORED_ANCHOR, "Europe/Paris", datetime(2026, 12, 26, tzinfo=UTC),
        # Fri 25 Dec 2026 -> Mon 28 Dec, past the weekend.
        datetime(2026, 11, 24, 23, tzinfo=UTC), datetime(2026, 12, 27, 23, tzinfo=UTC),
        id="fr-christmas-rolls-forward",
    ),
    # -- an instant on a boundary belongs to the period starting there
    pytest.param(
        MONTHLY, datetime(2027, 1, 31, tzinfo=UTC), "UTC", datetime(2027, 2, 28, tzinfo=UTC),
        datetime(2027, 2, 28, tzinfo=UTC), datetime(2027, 3, 31, tzinfo=UTC),
        id="interval-instant-on-boundary",
    ),
    pytest.param(
        FIRST_AND_15TH, IGNORED_ANCHOR, "UTC", datetime(2026, 3, 15, tzinfo=UTC),
        datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC),
        id="calendar-instant-on-boundary",
    ),
    pytest.param(
        MONTHLY, datetime(2000, 1, 31, tzinfo=UTC), "UTC", datetime(2099, 2, 15, tzinfo=UTC),
        datetime(2099, 1, 31, tzinfo=UTC), datetime(2099, 2, 28, tzinfo=UTC),
        id="monthly-99-years-after-the-anchor",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "anchor", "tz", "at", "expected_start", "expected_end"), HAND_WORKED_PERIODS)
def test_period_containing_matches_hand_worked_calendar(spec, anchor, tz, at, expected_start, expected_end):
    # given a spec, an anchor and a customer time zone (parameters)
    # when
    period = period_containing(spec, anchor=anchor, tz=tz, at=at)

    # then
    assert (period.start, period.end) == (expected_start, expected_end)
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC


def test_monthly_period_across_spring_forward_is_an_hour_short_and_fall_back_an_hour_long():
    # given a monthly cycle at local midnight in Paris
    anchor = datetime(2026, 1, 1, tzinfo=PARIS)

    # when
    march = period_containing(MONTHLY, anchor=anchor, tz="Europe/Paris", at=datetime(2026, 3, 15, tzinfo=UTC))
    october = period_containing(MONTHLY, anchor=anchor, tz="Europe/Paris", at=datetime(2026, 10, 15, tzinfo=UTC))

    # then
    assert march.seconds == 31 * 86400 - 3600
    assert october.seconds == 31 * 86400 + 3600


def test_first_period_starts_exactly_at_an_anchor_in_the_repeated_hour():
    # given an anchor at the second 02:30 of 25 Oct 2026 in Paris (CET, 01:30 UTC)
    anchor = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS)

    # when
    period = period_containing(MONTHLY, anchor=anchor, tz="Europe/Paris", at=anchor)

    # then
    assert period.start == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    # later boundaries take the first 02:30, which is not ambiguous in November
    assert period.end == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_iter_periods_walks_month_ends_from_the_anchor_not_from_the_previous_period():
    # given a monthly cycle anchored on 31 Jan 2028
    anchor = datetime(2028, 1, 31, tzinfo=UTC)

    # when
    periods = list(islice(iter_periods(MONTHLY, anchor=anchor, tz="UTC", start=anchor), 5))

    # then
    assert [period.start for period in periods] == [
        datetime(2028, 1, 31, tzinfo=UTC),
        datetime(2028, 2, 29, tzinfo=UTC),
        datetime(2028, 3, 31, tzinfo=UTC),
        datetime(2028, 4, 30, tzinfo=UTC),
        datetime(2028, 5, 31, tzinfo=UTC),
    ]
    assert periods[-1].end == datetime(2028, 6, 30, tzinfo=UTC)


def test_boundaries_between_includes_start_and_excludes_end():
    # given a monthly cycle anchored on 31 Jan 2028 and a window that starts on a boundary
    anchor = datetime(2028, 1, 31, tzinfo=UTC)

    # when
    boundaries = boundaries_between(
        MONTHLY,
        anchor=anchor,
        tz="UTC",
        start=datetime(2028, 2, 29, tzinfo=UTC),
        end=datetime(2028, 5, 31, tzinfo=UTC),
    )

    # then
    assert boundaries == [
        datetime(2028, 2, 29, tzinfo=UTC),
        datetime(2028, 3, 31, tzinfo=UTC),
        datetime(2028, 4, 30, tzinfo=UTC),
    ]


def test_boundaries_between_an_empty_window_is_empty():
    # given a window of zero length
    at = datetime(2026, 3, 15, tzinfo=UTC)

    # when
    boundaries = boundaries_between(FIRST_AND_15TH, anchor=IGNORED_ANCHOR, tz="UTC", start=at, end=at)

    # then
    assert boundaries == []


def test_next_boundary_is_strictly_after_an_instant_on_a_boundary():
    # given twice-monthly billing and an instant exactly on the 15th
    on_boundary = datetime(2026, 3, 15, tzinfo=UTC)

    # when
    following = next_boundary(FIRST_AND_15TH, anchor=IGNORED_ANCHOR, tz="UTC", after=on_boundary)

    # then
    assert following == datetime(2026, 4, 1, tzinfo=UTC)


def test_calendar_cycles_ignore_the_anchor():
    # given two customers on the same payday plan who signed up on different days
    at = datetime(2026, 6, 1, tzinfo=UTC)

    # when
    early = period_containing(PAYDAY_25TH, anchor=datetime(2020, 1, 3, tzinfo=UTC), tz="UTC", at=at)
    late = period_containing(PAYDAY_25TH, anchor=datetime(2026, 5, 30, tzinfo=UTC), tz="UTC", at=at)

    # then
    assert early == late


def test_twice_monthly_days_that_merge_in_february_bill_once_that_month():
    # given the 30th and the last day, which are both 28 Feb in 2026
    spec = CycleSpec.twice_monthly(30, -1)

    # when
    boundaries = boundaries_between(
        spec,
        anchor=IGNORED_ANCHOR,
        tz="UTC",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 4, 1, tzinfo=UTC),
    )

    # then
    assert boundaries == [
        datetime(2026, 1, 30, tzinfo=UTC),
        datetime(2026, 1, 31, tzinfo=UTC),
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 30, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    ]


def test_a_skipped_local_day_does_not_make_an_empty_period():
    # given daily billing in Samoa, which skipped 30 Dec 2011 to cross the date line
    anchor = datetime(2011, 12, 1, tzinfo=ZoneInfo("Pacific/Apia"))

    # when
    periods = list(
        islice(
            iter_periods(
                CycleSpec.every(1, "day"),
                anchor=anchor,
                tz="Pacific/Apia",
                start=datetime(2011, 12, 29, 12, tzinfo=UTC),
            ),
            2,
        )
    )

    # then local midnight of 29 Dec (UTC-10) is followed by local midnight of 31 Dec (UTC+14)
    assert periods[0] == Period(
        start=datetime(2011, 12, 29, 10, tzinfo=UTC), end=datetime(2011, 12, 30, 10, tzinfo=UTC)
    )
    assert periods[1].start == datetime(2011, 12, 30, 10, tzinfo=UTC)
    assert periods[1].end == datetime(2011, 12, 31, 10, tzinfo=UTC)


# -- invariants for any spec --------------------------------------------------

ZONES_WITH_MIDNIGHT = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]
ZONE_NAMES = [*ZONES_WITH_MIDNIGHT, "America/Santiago"]
HOLIDAY_CALENDARS = [(None, None), ("FR", None), ("US", None), ("DE", "BY")]
DAYS_IN_LONGEST_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}

month_days = st.one_of(st.integers(min_value=1, max_value=31), st.just(-1))
month_day_pairs = st.integers(min_value=1, max_value=12).flatmap(
    lambda month: st.tuples(st.just(month), st.integers(min_value=1, max_value=DAYS_IN_LONGEST_MONTH[month]))
)
interval_specs = st.sampled_from(UNITS).flatmap(
    lambda unit: st.builds(
        CycleSpec.every,
        # Mostly everyday counts, sometimes anything up to the cap.
        st.one_of(
            st.integers(min_value=1, max_value=min(14, MAX_COUNT_PER_UNIT[unit])),
            st.integers(min_value=1, max_value=MAX_COUNT_PER_UNIT[unit]),
        ),
        st.just(unit),
    )
)


@st.composite
def calendar_specs(draw: st.DrawFn) -> CycleSpec:
    kind = draw(st.sampled_from(["twice_monthly", "explicit_dates", "day_of_month", "last_business_day"]))
    business_day = "previous" if kind == "last_business_day" else draw(st.sampled_from(BUSINESS_DAY_RULES))
    holiday_country, holiday_subdivision = (
        (None, None) if business_day == "none" else draw(st.sampled_from(HOLIDAY_CALENDARS))
    )
    days: tuple[int, ...] = ()
    dates: tuple[tuple[int, int], ...] = ()
    if kind == "twice_monthly":
        days = tuple(draw(st.lists(month_days, min_size=2, max_size=2, unique_by=lambda day: 31 if day == -1 else day)))
    elif kind == "day_of_month":
        days = (draw(month_days),)
    elif kind == "explicit_dates":
        dates = tuple(draw(st.lists(month_day_pairs, min_size=1, max_size=6, unique=True)))
    return CycleSpec(
        kind=kind,
        days=days,
        dates=dates,
        business_day=business_day,
        holiday_country=holiday_country,
        holiday_subdivision=holiday_subdivision,
    )


any_spec = st.one_of(interval_specs, calendar_specs())
# Local wall-clock times in several zones, including times that are skipped or
# repeated by daylight saving, so anchors land on the awkward hours too.
instants = st.datetimes(
    min_value=datetime(1975, 1, 1),
    max_value=datetime(2090, 1, 1),
    timezones=st.sampled_from([ZoneInfo(name) for name in ZONE_NAMES]),
)
zone_names = st.sampled_from(ZONE_NAMES)

PERIODS_CHECKED = 24


def _first_periods(spec: CycleSpec, *, anchor: datetime, tz: str, start: datetime) -> list[Period]:
    return list(islice(iter_periods(spec, anchor=anchor, tz=tz, start=start), PERIODS_CHECKED))


@settings(max_examples=200, deadline=None)
@given(spec=any_spec, anchor=instants, tz=zone_names, start=instants)
@example(
    spec=CycleSpec.every(1, "day"),
    anchor=datetime(2026, 3, 1, 2, 30, tzinfo=PARIS),
    tz="Europe/Paris",
    start=datetime(2026, 3, 20, tzinfo=UTC),
)
@example(
    spec=CycleSpec.every(1, "day"),
    anchor=datetime(2026, 10, 4, 2, 15, tzinfo=ZoneInfo("Australia/Lord_Howe")),
    tz="Australia/Lord_Howe",
    start=datetime(2026, 9, 20, tzinfo=UTC),
)
def test_consecutive_periods_are_contiguous_and_non_empty(spec, anchor, tz, start):
    # given any spec, anchor, zone and start (parameters)
    # when
    periods = _first_periods(spec, anchor=anchor, tz=tz, start=start)

    # then
    assert periods[0].contains(start)
    for period, following in zip(periods, periods[1:], strict=False):
        assert period.start < period.end
        assert period.end == following.start
    assert all(period.start.tzinfo is UTC and period.end.tzinfo is UTC for period in periods)


@settings(max_examples=200, deadline=None)
@given(
    spec=any_spec,
    anchor=instants,
    tz=zone_names,
    start=instants,
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_lookups_agree_with_iter_periods(spec, anchor, tz, start, position):
    # given the first periods from some start, and an instant somewhere inside them
    periods = _first_periods(spec, anchor=anchor, tz=tz, start=start)
    window_start, window_end = periods[0].start, periods[-1].end
    at = min(window_start + (window_end - window_start) * position, window_end - timedelta(microseconds=1))

    # when
    containing = period_containing(spec, anchor=anchor, tz=tz, at=at)
    boundaries = boundaries_between(spec, anchor=anchor, tz=tz, start=window_start, end=window_end)

    # then
    assert containing.contains(at)
    assert containing in periods
    assert next_boundary(spec, anchor=anchor, tz=tz, after=at) == containing.end
    assert [next_boundary(spec, anchor=anchor, tz=tz, after=period.start) for period in periods] == [
        period.end for period in periods
    ]
    assert boundaries == [period.start for period in periods]


@settings(max_examples=200, deadline=None)
@given(spec=calendar_specs(), tz=st.sampled_from(ZONES_WITH_MIDNIGHT), start=instants)
def test_calendar_boundaries_are_local_midnights_on_business_days(spec, tz, start):
    # given a calendar spec in a zone whose clocks (today) never skip midnight
    zone = ZoneInfo(tz)

    # when
    periods = _first_periods(spec, anchor=IGNORED_ANCHOR, tz=tz, start=start)

    # then every boundary is the first instant of its local day: midnight, or the end of
    # a gap that swallowed it (Lord Howe went from +10:00 to +10:30 at midnight on
    # 1 March 1981, so that day began at 00:30)
    for period in periods:
        local_start = period.start.astimezone(zone)
        just_before = (period.start - timedelta(microseconds=1)).astimezone(zone)
        assert local_start.hour == 0
        assert just_before.date() < local_start.date()
        if spec.business_day != "none":
            assert local_start.weekday() < 5


@settings(max_examples=200, deadline=None)
@given(
    months=st.sampled_from([1, 3, 6, 12]),
    anchor=instants,
    tz=zone_names,
    start=instants,
)
def test_monthly_boundaries_clamp_to_month_end_and_return_to_the_anchor_day(months, anchor, tz, start):
    # given a cycle of whole months anchored on any day, e.g. the 31st
    spec = CycleSpec.every(months, "month")
    # Through UTC: astimezone() to a datetime's own zone returns it unchanged, which
    # would read a non-existent local time (a spring-forward gap) at face value.
    anchor_day = anchor.astimezone(UTC).astimezone(ZoneInfo(tz)).day

    # when
    periods = _first_periods(spec, anchor=anchor, tz=tz, start=start)

    # then every boundary falls on the anchor day, or the month's last day if shorter
    for period in periods:
        local_start = period.start.astimezone(ZoneInfo(tz))
        month_length = ((local_start.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)).day
        assert local_start.day == min(anchor_day, month_length)


# -- descriptions, MRR factors, serialisation -----------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(CycleSpec.monthly(), "every month", id="monthly"),
        pytest.param(CycleSpec.quarterly(), "every 3 months", id="quarterly"),
        pytest.param(CycleSpec.every(2, "week"), "every 2 weeks", id="biweekly"),
        pytest.param(CycleSpec.yearly(), "every year", id="yearly"),
        pytest.param(FIRST_AND_15TH, "on the 1st and 15th", id="first-and-15th"),
        pytest.param(CycleSpec.twice_monthly(-1, 15), "on the 15th and last day", id="15th-and-last"),
        pytest.param(SEMESTERS, "on 1 Sep and 1 Feb", id="semesters"),
        pytest.param(
            CycleSpec.explicit_dates([(1, 2), (4, 3), (7, 22)]), "on 2 Jan, 3 Apr and 22 Jul", id="three-dates"
        ),
        pytest.param(PAYDAY_25TH, "on the 25th", id="payday"),
        pytest.param(CycleSpec.day_of_month(-1), "on the last day", id="last-day"),
        pytest.param(
            CycleSpec.day_of_month(22, business_day="previous"),
            "on the 22nd, or the previous business day",
            id="payday-weekends",
        ),
        pytest.param(
            CycleSpec.day_of_month(1, business_day="next", holiday_country="DE", holiday_subdivision="BY"),
            "on the 1st, or the next business day (DE-BY)",
            id="payday-holidays-subdivision",
        ),
        pytest.param(CycleSpec.last_business_day(holiday_country="FR"), "on the last business day (FR)", id="lbd-fr"),
        pytest.param(CycleSpec.last_business_day(), "on the last business day", id="lbd-weekends"),
    ],
)
def test_describe_gives_a_short_english_label(spec, expected):
    assert spec.describe() == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(CycleSpec.monthly(), Fraction(12), id="monthly"),
        pytest.param(CycleSpec.quarterly(), Fraction(4), id="quarterly"),
        pytest.param(CycleSpec.every(2, "year"), Fraction(1, 2), id="every-2-years"),
        pytest.param(CycleSpec.weekly(), Fraction(1461, 28), id="weekly-julian-year"),
        pytest.param(CycleSpec.every(2, "week"), Fraction(1461, 56), id="biweekly"),
        pytest.param(CycleSpec.every(10, "day"), Fraction(1461, 40), id="every-10-days"),
        pytest.param(FIRST_AND_15TH, Fraction(24), id="twice-monthly"),
        pytest.param(SEMESTERS, Fraction(2), id="semesters"),
        pytest.param(PAYDAY_25TH, Fraction(12), id="payday"),
        pytest.param(CycleSpec.last_business_day(), Fraction(12), id="last-business-day"),
    ],
)
def test_periods_per_year_normalises_to_mrr(spec, expected):
    assert spec.periods_per_year() == expected


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(CycleSpec.every(3, "month"), id="interval"),
        pytest.param(CycleSpec.twice_monthly(15, -1), id="twice-monthly"),
        pytest.param(CycleSpec.explicit_dates([(9, 1), (2, 29)]), id="explicit-dates"),
        pytest.param(CycleSpec.day_of_month(25, business_day="previous", holiday_country="FR"), id="day-of-month"),
        pytest.param(
            CycleSpec.last_business_day(holiday_country="DE", holiday_subdivision="BY"), id="last-business-day"
        ),
    ],
)
def test_to_dict_round_trips_through_json(spec):
    # given a spec stored in Price's JSONField
    stored = json.loads(json.dumps(spec.to_dict()))

    # when
    loaded = CycleSpec.from_dict(stored)

    # then
    assert loaded == spec
    assert loaded.describe() == spec.describe()


def test_equivalent_specs_are_stored_the_same_way():
    # given specs written in a different order or case
    # when / then
    assert CycleSpec.twice_monthly(15, 1) == CycleSpec.twice_monthly(1, 15)
    assert CycleSpec.day_of_month(1, business_day="next", holiday_country="fr").holiday_country == "FR"
    assert CycleSpec.from_dict({"kind": "last_business_day"}) == CycleSpec.last_business_day()


# -- rejected input ------------------------------------------------------------

INTERVAL_MONTH = {"kind": "interval", "unit": "month"}
PAYDAY = {"kind": "day_of_month", "days": [25]}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"kind": "hourly"}, "kind", id="unknown-kind"),
        pytest.param({}, "kind", id="missing-kind"),
        pytest.param({"kind": "interval", "unit": "fortnight"}, "unit", id="unknown-unit"),
        pytest.param({"kind": "interval"}, "unit", id="interval-without-unit"),
        pytest.param({**INTERVAL_MONTH, "count": 0}, "count", id="count-zero"),
        pytest.param({**INTERVAL_MONTH, "count": -1}, "count", id="count-negative"),
        pytest.param({**INTERVAL_MONTH, "count": True}, "count", id="count-bool"),
        pytest.param({**INTERVAL_MONTH, "count": "3"}, "count", id="count-string"),
        pytest.param({**INTERVAL_MONTH, "count": 121}, "count", id="count-too-many-months"),
        pytest.param({"kind": "interval", "unit": "year", "count": 11}, "count", id="count-too-many-years"),
        pytest.param({**INTERVAL_MONTH, "days": [1]}, "days", id="interval-with-days"),
        pytest.param({**INTERVAL_MONTH, "dates": [[9, 1]]}, "dates", id="interval-with-dates"),
        pytest.param({**INTERVAL_MONTH, "business_day": "next"}, "business_day", id="interval-business-day"),
        pytest.param({**INTERVAL_MONTH, "holiday_country": "FR"}, "holiday_country", id="interval-holidays"),
        pytest.param({"kind": "twice_monthly", "days": [1]}, "days", id="twice-monthly-one-day"),
        pytest.param({"kind": "twice_monthly", "days": [1, 15, 28]}, "days", id="twice-monthly-three-days"),
        pytest.param({"kind": "twice_monthly", "days": [15, 15]}, "days", id="twice-monthly-same-day"),
        pytest.param({"kind": "twice_monthly", "days": [31, -1]}, "days", id="twice-monthly-31st-is-last-day"),
        pytest.param({"kind": "twice_monthly", "days": [0, 15]}, "days", id="day-zero"),
        pytest.param({"kind": "twice_monthly", "days": [1, 32]}, "days", id="day-32"),
        pytest.param({"kind": "twice_monthly", "days": [-2, 15]}, "days", id="day-minus-2"),
        pytest.param({"kind": "twice_monthly", "days": [1, "15"]}, "days", id="day-string"),
        pytest.param({"kind": "twice_monthly", "days": "1,15"}, "days", id="days-not-a-list"),
        pytest.param({"kind": "twice_monthly", "days": [1, 15], "dates": [[9, 1]]}, "dates", id="extra-dates"),
        pytest.param({"kind": "day_of_month", "days": []}, "days", id="day-of-month-no-day"),
        pytest.param({"kind": "day_of_month", "days": [1, 15]}, "days", id="day-of-month-two-days"),
        pytest.param({**PAYDAY, "unit": "month"}, "unit", id="calendar-with-unit"),
        pytest.param({**PAYDAY, "count": 2}, "count", id="calendar-with-count"),
        pytest.param({"kind": "explicit_dates"}, "dates", id="explicit-no-dates"),
        pytest.param({"kind": "explicit_dates", "dates": [[13, 1]]}, "dates", id="month-13"),
        pytest.param({"kind": "explicit_dates", "dates": [[2, 30]]}, "dates", id="feb-30"),
        pytest.param({"kind": "explicit_dates", "dates": [[4, 31]]}, "dates", id="apr-31"),
        pytest.param({"kind": "explicit_dates", "dates": [[9, 1], [9, 1]]}, "dates", id="duplicate-date"),
        pytest.param({"kind": "explicit_dates", "dates": [[9]]}, "dates", id="date-not-a-pair"),
        pytest.param({"kind": "explicit_dates", "dates": "09-01"}, "dates", id="dates-not-a-list"),
        pytest.param({"kind": "explicit_dates", "dates": [[9, 1]], "days": [1]}, "days", id="explicit-days"),
        pytest.param({"kind": "last_business_day", "days": [-1]}, "days", id="last-business-day-days"),
        pytest.param({**PAYDAY, "business_day": "sometimes"}, "business_day", id="unknown-business-day"),
        pytest.param(
            {"kind": "last_business_day", "business_day": "next"}, "business_day", id="last-business-day-next"
        ),
        pytest.param({**PAYDAY, "holiday_country": "FR"}, "holiday_country", id="holidays-without-rule"),
        pytest.param(
            {**PAYDAY, "business_day": "next", "holiday_country": "XX"}, "holiday_country", id="unknown-country"
        ),
        pytest.param({**PAYDAY, "business_day": "next", "holiday_country": ""}, "holiday_country", id="empty-country"),
        pytest.param({**PAYDAY, "business_day": "next", "holiday_country": 33}, "holiday_country", id="country-number"),
        pytest.param(
            {**PAYDAY, "business_day": "next", "holiday_country": "FR", "holiday_subdivision": "ZZ"},
            "holiday_subdivision",
            id="unknown-subdivision",
        ),
        pytest.param(
            {**PAYDAY, "business_day": "next", "holiday_subdivision": "BY"},
            "holiday_subdivision",
            id="subdivision-without-country",
        ),
        pytest.param({**PAYDAY, "every": "month"}, "every", id="unknown-field"),
    ],
)
def test_from_dict_rejects_a_bad_field_by_name(data, field):
    # given stored data with one bad field (parameters)
    # when
    with pytest.raises(CycleSpecError) as raised:
        CycleSpec.from_dict(data)

    # then
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}:")


def test_from_dict_rejects_something_other_than_an_object():
    with pytest.raises(CycleSpecError, match="JSON object"):
        CycleSpec.from_dict(["interval", "month"])  # type: ignore[arg-type]


def test_constructors_validate_too():
    with pytest.raises(CycleSpecError, match="^count:"):
        CycleSpec.every(0, "month")
    with pytest.raises(CycleSpecError, match="^days:"):
        CycleSpec.day_of_month(0)
    with pytest.raises(CycleSpecError, match="^holiday_country:"):
        CycleSpec.last_business_day(holiday_country="Atlantis")


NAIVE = datetime(2026, 3, 1)
AWARE = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: period_containing(MONTHLY, anchor=NAIVE, tz="UTC", at=AWARE), id="anchor"),
        pytest.param(lambda: period_containing(MONTHLY, anchor=AWARE, tz="UTC", at=NAIVE), id="at"),
        pytest.param(lambda: next_boundary(MONTHLY, anchor=AWARE, tz="UTC", after=NAIVE), id="after"),
        pytest.param(lambda: iter_periods(MONTHLY, anchor=AWARE, tz="UTC", start=NAIVE), id="iter-start"),
        pytest.param(lambda: iter_periods(PAYDAY_25TH, anchor=NAIVE, tz="UTC", start=AWARE), id="iter-anchor"),
        pytest.param(lambda: boundaries_between(MONTHLY, anchor=AWARE, tz="UTC", start=AWARE, end=NAIVE), id="end"),
        pytest.param(lambda: Period(start=NAIVE, end=AWARE + timedelta(days=1)), id="period-start"),
        pytest.param(lambda: Period(start=AWARE, end=AWARE + timedelta(days=1)).contains(NAIVE), id="contains"),
    ],
)
def test_naive_datetimes_are_rejected(call):
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Europe", "../../etc/passwd", "localtime", "utc", None])
def test_bad_time_zones_are_rejected(tz):
    with pytest.raises(CycleSpecError, match="^tz:") as raised:
        period_containing(MONTHLY, anchor=AWARE, tz=tz, at=AWARE)
    assert raised.value.field == "tz"


def test_boundaries_between_rejects_a_reversed_window():
    with pytest.raises(ValueError, match="before start"):
        boundaries_between(MONTHLY, anchor=AWARE, tz="UTC", start=AWARE, end=AWARE - timedelta(days=1))


def test_a_period_must_end_after_it_starts():
    with pytest.raises(ValueError, match="ends after it starts"):
        Period(start=AWARE, end=AWARE)


def test_period_is_half_open_and_stored_in_utc():
    # given a period written in Paris time
    period = Period(start=datetime(2026, 3, 1, tzinfo=PARIS), end=datetime(2026, 4, 1, tzinfo=PARIS))

    # when / then
    assert period.start == datetime(2026, 2, 28, 23, tzinfo=UTC) and period.start.tzinfo is UTC
    assert period.contains(period.start)
    assert not period.contains(period.end)
    assert period.seconds == 31 * 86400 - 3600
