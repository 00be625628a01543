from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.proration import (
    ItemCharge,
    ProrationError,
    ProrationLine,
    cancellation_credit,
    change_proration,
    prorate,
    remaining_fraction,
)

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


APRIL = (utc(2024, 4, 1), utc(2024, 5, 1))  # 30 days
JANUARY = (utc(2025, 1, 1), utc(2025, 2, 1))  # 31 days
FEB_LEAP = (utc(2024, 2, 1), utc(2024, 3, 1))  # 29 days
FEB_COMMON = (utc(2025, 2, 1), utc(2025, 3, 1))  # 28 days
# March 2024 in Paris, as UTC instants: clocks jump from 02:00 to 03:00 on 31 March,
# so the month lasts 31 days minus one hour = 743 hours.
MARCH_PARIS = (utc(2024, 2, 29, 23), utc(2024, 3, 31, 22))

STARTER = ItemCharge(key="price:starter", description="Starter", quantity=1, amount=2900)
PRO = ItemCharge(key="price:pro", description="Pro", quantity=1, amount=9900)
SEATS_3 = ItemCharge(key="price:seat", description="Seat", quantity=3, amount=3000)
SEATS_5 = ItemCharge(key="price:seat", description="Seat", quantity=5, amount=5000)
ENTERPRISE = ItemCharge(key="price:enterprise", description="Enterprise", quantity=1, amount=3_888_000)
ENTERPRISE_PLUS = ItemCharge(key="price:enterprise+", description="Enterprise+", quantity=1, amount=3_888_000 * 2)


@pytest.mark.parametrize(
    ("case", "old", "new", "period", "at", "expected"),
    [
        ("upgrade halfway through a 30-day month", [STARTER], [PRO], APRIL, utc(2024, 4, 16), [-1450, 4950]),
        ("downgrade halfway", [PRO], [STARTER], APRIL, utc(2024, 4, 16), [-4950, 1450]),
        # 10 days left of 30: 3000 / 3 = 1000 and 5000 / 3 = 1666.67
        ("3 -> 5 seats with a third left", [SEATS_3], [SEATS_5], APRIL, utc(2024, 4, 21), [-1000, 1667]),
        ("change on the first second", [STARTER], [PRO], APRIL, utc(2024, 4, 1), [-2900, 9900]),
        # 9900 x 2591999 / 2592000 = 9899.996
        ("one second after the start", [STARTER], [PRO], APRIL, utc(2024, 4, 1, 0, 0, 1), [-2900, 9900]),
        ("change before the period starts", [STARTER], [PRO], APRIL, utc(2024, 3, 20), [-2900, 9900]),
        ("change on the boundary second (period end)", [STARTER], [PRO], APRIL, utc(2024, 5, 1), []),
        # 2900 / 2592000 and 9900 / 2592000 both round to 0: nothing left to bill
        (
            "one second before the end, small amounts",
            [STARTER],
            [PRO],
            APRIL,
            utc(2024, 4, 30, 23, 59, 59),
            [],
        ),
        # 3888000 / 2592000 = 1.5 rounds away from zero on both sides: 2 and -2
        (
            "one second before the end, half a cent",
            [ENTERPRISE],
            [ENTERPRISE_PLUS],
            APRIL,
            utc(2024, 4, 30, 23, 59, 59),
            [-2, 3],
        ),
        # 11 days left of 31: 2900 x 11/31 = 1029.03, 9900 x 11/31 = 3512.90
        ("31-day month", [STARTER], [PRO], JANUARY, utc(2025, 1, 21), [-1029, 3513]),
        # 15 days left of 29: 2900 x 15/29 = 1500, 9900 x 15/29 = 5120.69
        ("February of a leap year", [STARTER], [PRO], FEB_LEAP, utc(2024, 2, 15), [-1500, 5121]),
        ("February of a common year", [STARTER], [PRO], FEB_COMMON, utc(2025, 2, 15), [-1450, 4950]),
        # 21 real hours left of 743: 2900 x 21/743 = 81.97, 9900 x 21/743 = 279.81
        # (wall-clock arithmetic would say 21/744 and charge 279)
        ("month spanning a DST change", [STARTER], [PRO], MARCH_PARIS, utc(2024, 3, 31, 1), [-82, 280]),
        ("nothing changed", [STARTER, SEATS_3], [STARTER, SEATS_3], APRIL, utc(2024, 4, 16), []),
        ("add-on added, plan unchanged", [PRO], [PRO, SEATS_3], APRIL, utc(2024, 4, 16), [1500]),
        ("add-on removed, plan unchanged", [PRO, SEATS_3], [PRO], APRIL, utc(2024, 4, 16), [-1500]),
    ],
)
def test_change_proration_hand_worked(case, old, new, period, at, expected):
    # given a subscription billed for `period` / when its items change at `at`
    lines = change_proration(old_items=old, new_items=new, period_start=period[0], period_end=period[1], at=at)

    # then the credits and charges are the hand-computed ones, covering [at, period_end)
    assert [line.amount for line in lines] == expected, case
    for line in lines:
        assert line.period_start == max(at, period[0])
        assert line.period_end == period[1]


def test_change_proration_describes_and_quantifies_each_line():
    # given 3 seats moving to 5 with a third of April left
    lines = change_proration(
        old_items=[SEATS_3],
        new_items=[SEATS_5],
        period_start=APRIL[0],
        period_end=APRIL[1],
        at=utc(2024, 4, 21),
    )

    # then the customer sees the unused time on 3 seats and the remaining time on 5
    assert lines == [
        ProrationLine(
            key="price:seat",
            description="Unused time on Seat",
            quantity=3,
            amount=-1000,
            period_start=utc(2024, 4, 21),
            period_end=APRIL[1],
            item_description="Seat",
        ),
        ProrationLine(
            key="price:seat",
            description="Remaining time on Seat",
            quantity=5,
            amount=1667,
            period_start=utc(2024, 4, 21),
            period_end=APRIL[1],
            item_description="Seat",
        ),
    ]


def test_dst_period_given_in_local_time_counts_real_seconds():
    # given the same March period and change instant, written in Paris local time
    start, end = datetime(2024, 3, 1, tzinfo=PARIS), datetime(2024, 4, 1, tzinfo=PARIS)
    at = datetime(2024, 3, 31, 3, tzinfo=PARIS)

    # when prorated / then 21 real hours of 743 remain, as with UTC instants
    assert remaining_fraction(period_start=start, period_end=end, at=at) == Fraction(21, 743)
    assert prorate(amount=9900, period_start=start, period_end=end, at=at) == 280
    assert prorate(amount=9900, period_start=MARCH_PARIS[0], period_end=MARCH_PARIS[1], at=at) == 280


def test_cancellation_credit_returns_the_unused_time_of_every_item():
    # given Pro plus 3 seats, cancelled halfway through April
    lines = cancellation_credit(items=[PRO, SEATS_3], period_start=APRIL[0], period_end=APRIL[1], at=utc(2024, 4, 16))

    # then each item is credited for half a month
    assert [(line.description, line.amount) for line in lines] == [
        ("Unused time on Pro", -4950),
        ("Unused time on Seat", -1500),
    ]


def test_cancellation_at_period_end_credits_nothing():
    assert cancellation_credit(items=[PRO], period_start=APRIL[0], period_end=APRIL[1], at=APRIL[1]) == []


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2024, 3, 1), Fraction(1)),
        (utc(2024, 4, 1), Fraction(1)),
        (utc(2024, 4, 16), Fraction(1, 2)),
        (utc(2024, 5, 1), Fraction(0)),
        (utc(2024, 6, 1), Fraction(0)),
        (utc(2024, 4, 30, 23, 59, 59), Fraction(1, 2_592_000)),
    ],
)
def test_remaining_fraction_is_clamped_to_the_period(at, expected):
    assert remaining_fraction(period_start=APRIL[0], period_end=APRIL[1], at=at) == expected


def test_naive_datetimes_are_refused():
    with pytest.raises(ProrationError, match="timezone-aware"):
        remaining_fraction(period_start=datetime(2024, 4, 1), period_end=APRIL[1], at=APRIL[0])


def test_an_empty_period_is_refused():
    with pytest.raises(ProrationError, match="must be after"):
        prorate(amount=2900, period_start=APRIL[1], period_end=APRIL[1], at=APRIL[1])


def test_duplicate_item_keys_are_refused():
    with pytest.raises(ProrationError, match="duplicate item key 'price:pro'"):
        change_proration(old_items=[PRO, PRO], new_items=[], period_start=APRIL[0], period_end=APRIL[1], at=APRIL[0])


def test_floats_never_touch_money():
    with pytest.raises(TypeError):
        prorate(amount=29.0, period_start=APRIL[0], period_end=APRIL[1], at=APRIL[0])
    with pytest.raises(TypeError):
        ItemCharge(key="price:pro", description="Pro", quantity=1, amount=99.0)


EPOCH = utc(2024, 1, 1)
items = st.builds(
    ItemCharge,
    key=st.sampled_from(["price:a", "price:b", "price:c"]),
    description=st.just("Plan"),
    quantity=st.integers(0, 50),
    amount=st.integers(-(10**7), 10**9),
)
item_lists = st.lists(items, max_size=3, unique_by=lambda item: item.key)


@st.composite
def periods(draw):
    start = EPOCH + timedelta(seconds=draw(st.integers(0, 10**8)))
    end = start + timedelta(seconds=draw(st.integers(1, 400 * 86_400)))
    at = start + timedelta(seconds=draw(st.integers(-86_400, (end - start) // timedelta(seconds=1) + 86_400)))
    return start, end, at


@given(old=item_lists, new=item_lists, period=periods())
def test_change_then_reverse_at_the_same_instant_nets_to_zero(old, new, period):
    # given a change A -> B and its reversal B -> A at the same instant
    start, end, at = period
    forth = change_proration(old_items=old, new_items=new, period_start=start, period_end=end, at=at)
    back = change_proration(old_items=new, new_items=old, period_start=start, period_end=end, at=at)

    # then the customer is left exactly where they started
    assert sum(line.amount for line in forth) + sum(line.amount for line in back) == 0


@given(old=item_lists, new=item_lists, period=periods())
def test_each_line_is_within_half_a_minor_unit_of_the_exact_share_and_never_exceeds_the_item(old, new, period):
    # given any change / when prorated
    start, end, at = period
    lines = change_proration(old_items=old, new_items=new, period_start=start, period_end=end, at=at)
    remaining = remaining_fraction(period_start=start, period_end=end, at=at)

    # then every line is the exact share rounded once, and no credit or charge exceeds the full amount
    full = {("old", i.key): i.amount for i in old} | {("new", i.key): i.amount for i in new}
    for line in lines:
        side = "new" if line.description.startswith("Remaining") else "old"
        amount = full[(side, line.key)]
        signed_exact = (1 if side == "new" else -1) * amount * remaining
        assert abs(line.amount - signed_exact) <= Fraction(1, 2)
        assert abs(line.amount) <= abs(amount)
