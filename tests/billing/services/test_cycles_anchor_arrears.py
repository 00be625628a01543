"""Issue 16, cycles: anchors from a rule, fees billed in arrears, minimum spend per period.

Every case runs the real services: subscription_create (and its preview), the billing
run (`manage.py bill` at the boundary), changes, cancellations and the upcoming invoice.
"""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from billing.cycles import AnchorConfig, CycleSpecError, anchor_from_config, iter_periods
from billing.cycles import CycleSpec as Spec
from billing.models import InvoiceItem, Price, Subscription
from billing.services.changes import subscription_change, subscription_preview_change
from billing.services.subscriptions import (
    ItemSpec,
    SubscriptionError,
    subscription_cancel,
    subscription_create,
    subscription_pause,
    subscription_preview_create,
    subscription_resume,
)
from billing.services.upcoming import upcoming_invoice
from billing.services.usage import UsageEventInput, usage_events_record
from invoices.models import Invoice
from tests.billing.services.conftest import MONTHLY, YEARLY, utc

pytestmark = pytest.mark.django_db

WEEKLY = {"kind": "interval", "unit": "week", "count": 1}
QUARTERLY = {"kind": "interval", "unit": "month", "count": 3}
PAYDAY = {"kind": "day_of_month", "days": [25]}


def bill_at(instant) -> None:
    with time_machine.travel(instant, tick=False):
        call_command("bill", "--inline", "--no-progress", stdout=io.StringIO())


def lines_of(invoice: Invoice) -> list[tuple[str, int]]:
    return [(line.description, line.amount) for line in invoice.lines.order_by("position", "pk")]


def preview_lines(preview) -> list[tuple[str, int]]:
    return [(line.draft.description, line.draft.amount) for line in preview.lines]


def renewal(subscription: Subscription, period_start) -> Invoice:
    return Invoice.objects.get(
        subscription=subscription, billing_reason="subscription_cycle", period_start=period_start
    )


def first_invoice(subscription: Subscription) -> Invoice:
    return Invoice.objects.get(subscription=subscription, billing_reason="subscription_create")


# -- anchors from a rule (pure) --------------------------------------------------------------------


def test_day_31_bills_on_the_last_day_of_shorter_months_and_goes_back_to_the_31st():
    rule = anchor_from_config(
        Spec.monthly(), AnchorConfig(day_of_month=31, hour=0, minute=0, second=0), tz="UTC", start=utc(2027, 1, 15)
    )
    periods = iter_periods(Spec.monthly(), anchor=rule.anchor, tz="UTC", start=rule.first_boundary)

    assert [next(periods).start.date().isoformat() for _ in range(5)] == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
    ]


def test_a_clamped_first_date_counts_from_an_earlier_31st():
    rule = anchor_from_config(
        Spec.monthly(), AnchorConfig(day_of_month=31, hour=0, minute=0, second=0), tz="UTC", start=utc(2027, 4, 10)
    )

    assert rule.first_boundary == utc(2027, 4, 30)
    assert rule.anchor == utc(2027, 3, 31)


def test_yearly_rule_bills_on_day_and_month_in_the_customers_zone_at_the_hour_given():
    rule = anchor_from_config(
        Spec.yearly(),
        AnchorConfig(day_of_month=29, month=2, hour=9, minute=30, second=0),
        tz="Europe/Paris",
        start=utc(2027, 4, 10),
    )
    periods = iter_periods(Spec.yearly(), anchor=rule.anchor, tz="Europe/Paris", start=rule.first_boundary)

    assert [next(periods).start for _ in range(3)] == [
        utc(2028, 2, 29, 8, 30),
        utc(2029, 2, 28, 8, 30),
        utc(2030, 2, 28, 8, 30),
    ]


def test_the_time_of_day_defaults_to_the_creations_local_time():
    rule = anchor_from_config(Spec.monthly(), AnchorConfig(day_of_month=1), tz="UTC", start=utc(2027, 4, 10, 14, 5, 7))

    assert rule.first_boundary == utc(2027, 5, 1, 14, 5, 7)


@pytest.mark.parametrize(
    ("spec", "config", "field"),
    [
        (Spec.weekly(), AnchorConfig(day_of_month=1), "billing_cycle_anchor_config"),
        (Spec.every(10, "day"), AnchorConfig(day_of_month=1), "billing_cycle_anchor_config"),
        (Spec.day_of_month(25), AnchorConfig(day_of_month=1), "billing_cycle_anchor_config"),
        (Spec.twice_monthly(1, 15), AnchorConfig(day_of_month=1), "billing_cycle_anchor_config"),
        (Spec.monthly(), AnchorConfig(day_of_month=1, month=3), "month"),
    ],
)
def test_a_rule_that_makes_no_sense_for_the_cycle_is_refused(spec, config, field):
    with pytest.raises(CycleSpecError) as refused:
        anchor_from_config(spec, config, tz="UTC", start=utc(2027, 4, 10))

    assert refused.value.field == field


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"day_of_month": 0}, "day_of_month"),
        ({"day_of_month": 32}, "day_of_month"),
        ({"day_of_month": 1, "month": 13}, "month"),
        ({"day_of_month": 1, "hour": 24}, "hour"),
        ({"day_of_month": 1, "second": -1}, "second"),
        ({"day_of_month": True}, "day_of_month"),
    ],
)
def test_out_of_range_rule_fields_are_refused(fields, field):
    with pytest.raises(CycleSpecError) as refused:
        AnchorConfig(**fields)

    assert refused.value.field == field


def test_a_quarterly_rule_with_a_month_picks_that_phase():
    rule = anchor_from_config(
        Spec.quarterly(),
        AnchorConfig(day_of_month=15, month=2, hour=0, minute=0, second=0),
        tz="UTC",
        start=utc(2027, 3, 1),
    )

    assert rule.first_boundary == utc(2027, 5, 15)  # Feb, May, Aug, Nov


# -- anchors from a rule (creation) ----------------------------------------------------------------


def test_creation_with_a_rule_prorates_the_time_up_to_the_first_date(make_customer, make_price):
    customer = make_customer()
    price = make_price(3000, nickname="Pro")

    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(price)],
        at=utc(2027, 4, 10),
        billing_cycle_anchor_config=AnchorConfig(day_of_month=31),
        proration_behavior="create_prorations",
    )

    assert subscription.current_period_end == utc(2027, 4, 30)
    assert subscription.billing_cycle_anchor_config["day_of_month"] == 31
    # [10 Apr, 30 Apr) is 20 of the 30 days of [31 Mar, 30 Apr): 3000 x 20/30.
    assert [amount for _, amount in lines_of(first_invoice(subscription))] == [2000]
    bill_at(utc(2027, 4, 30))
    assert renewal(subscription, utc(2027, 4, 30)).period_end == utc(2027, 5, 31)


def test_creation_without_proration_gives_the_time_up_to_the_first_date(make_customer, make_price):
    customer = make_customer()
    price = make_price(3000, nickname="Pro")

    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(price)],
        at=utc(2027, 4, 10),
        billing_cycle_anchor_config=AnchorConfig(day_of_month=31),
        proration_behavior="none",
    )

    invoice = first_invoice(subscription)
    assert invoice.total == 0
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.free_until == utc(2027, 4, 30)
    bill_at(utc(2027, 4, 30))
    assert [amount for _, amount in lines_of(renewal(subscription, utc(2027, 4, 30)))] == [3000]


def test_the_setting_chooses_the_first_period_when_the_call_does_not(make_customer, make_price, settings):
    settings.TARIF_ANCHOR_FIRST_PERIOD = "none"
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(3000))],
        at=utc(2027, 4, 10),
        billing_cycle_anchor=utc(2027, 5, 1),
    )

    assert first_invoice(subscription).total == 0


def test_the_preview_of_a_rule_is_the_creation(make_customer, make_price):
    customer = make_customer()
    price = make_price(3000, nickname="Pro")
    arguments = {
        "customer": customer,
        "items": [ItemSpec(price)],
        "at": utc(2027, 1, 15),
        "billing_cycle_anchor_config": AnchorConfig(day_of_month=31, hour=0, minute=0, second=0),
    }

    preview = subscription_preview_create(**arguments)
    subscription = subscription_create(**arguments)

    assert preview.current_period_end == subscription.current_period_end == utc(2027, 1, 31)
    # [15 Jan, 31 Jan) is 16 of the 31 days of [31 Dec, 31 Jan): 3000 x 16/31 = 1548.39.
    assert preview_lines(preview.first_invoice) == lines_of(first_invoice(subscription))
    assert preview.first_invoice.total == first_invoice(subscription).total


def test_a_rule_after_a_trial_counts_from_the_trials_end(make_customer, make_price):
    customer = make_customer()
    price = make_price(3000, nickname="Pro")

    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(price)],
        at=utc(2027, 4, 1),
        trial_days=14,
        billing_cycle_anchor_config=AnchorConfig(day_of_month=1, hour=0, minute=0, second=0),
        proration_behavior="create_prorations",
    )
    assert subscription.trial_end == utc(2027, 4, 15)

    bill_at(utc(2027, 4, 15))

    # [15 Apr, 1 May) is 16 of April's 30 days: 3000 x 16/30 = 1600.
    invoice = renewal(subscription, utc(2027, 4, 15))
    assert invoice.period_end == utc(2027, 5, 1)
    assert [amount for _, amount in lines_of(invoice)] == [1600]


def test_a_rule_after_a_trial_without_proration_leaves_the_stub_free(make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(3000))],
        at=utc(2027, 4, 1),
        trial_days=14,
        billing_cycle_anchor_config=AnchorConfig(day_of_month=1, hour=0, minute=0, second=0),
        proration_behavior="none",
    )

    bill_at(utc(2027, 4, 15))
    bill_at(utc(2027, 5, 1))

    assert renewal(subscription, utc(2027, 4, 15)).total == 0
    assert [amount for _, amount in lines_of(renewal(subscription, utc(2027, 5, 1)))] == [3000]


@pytest.mark.parametrize(
    ("cycle", "fields", "code", "field"),
    [
        (WEEKLY, {"day_of_month": 1}, "invalid_anchor_config", "billing_cycle_anchor_config"),
        (PAYDAY, {"day_of_month": 1}, "invalid_anchor_config", "billing_cycle_anchor_config"),
        (MONTHLY, {"day_of_month": 1, "month": 2}, "invalid_anchor_config", "billing_cycle_anchor_config.month"),
    ],
)
def test_creation_refuses_a_rule_the_cycle_cannot_follow(make_customer, make_price, cycle, fields, code, field):
    with pytest.raises(SubscriptionError) as refused:
        subscription_create(
            customer=make_customer(),
            items=[ItemSpec(make_price(3000, cycle=cycle))],
            at=utc(2027, 4, 10),
            billing_cycle_anchor_config=AnchorConfig(**fields),
        )

    assert refused.value.problem_code == code
    assert refused.value.field == field


def test_an_anchor_and_a_rule_together_are_refused(make_customer, make_price):
    with pytest.raises(SubscriptionError) as refused:
        subscription_create(
            customer=make_customer(),
            items=[ItemSpec(make_price(3000))],
            at=utc(2027, 4, 10),
            billing_cycle_anchor=utc(2027, 5, 1),
            billing_cycle_anchor_config=AnchorConfig(day_of_month=1),
        )

    assert refused.value.problem_code == "anchor_and_anchor_config"


def test_an_unknown_first_period_behaviour_is_refused(make_customer, make_price):
    with pytest.raises(SubscriptionError) as refused:
        subscription_create(
            customer=make_customer(),
            items=[ItemSpec(make_price(3000))],
            at=utc(2027, 4, 10),
            proration_behavior="always_invoice",
        )

    assert refused.value.problem_code == "proration_behavior"


# -- fees billed in arrears --------------------------------------------------------------------


@pytest.fixture
def arrears_plan(make_customer, make_price):
    """A customer, a 10.00 in-advance platform fee and a 10.00-per-seat fee billed in arrears."""
    customer = make_customer()
    platform = make_price(1000, nickname="Platform")
    seats = make_price(1000, nickname="Seats", billing_timing=Price.BillingTiming.IN_ARREARS)
    return customer, platform, seats


def test_the_first_invoice_does_not_charge_the_arrears_item(arrears_plan):
    customer, platform, seats = arrears_plan

    subscription = subscription_create(
        customer=customer, items=[ItemSpec(platform), ItemSpec(seats, 3)], at=utc(2027, 4, 1)
    )

    assert lines_of(first_invoice(subscription)) == [("Platform", 1000)]


def test_the_renewal_bills_the_period_that_ended_in_arrears_and_the_next_in_advance(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(platform), ItemSpec(seats, 3)], at=utc(2027, 4, 1)
    )
    preview = upcoming_invoice(subscription=subscription, at=utc(2027, 4, 20))

    bill_at(utc(2027, 5, 1))

    invoice = renewal(subscription, utc(2027, 5, 1))
    assert lines_of(invoice) == [("Platform", 1000), ("Seats (in arrears)", 3000)]
    arrears_line = invoice.lines.get(description="Seats (in arrears)")
    assert (arrears_line.period_start, arrears_line.period_end) == (utc(2027, 4, 1), utc(2027, 5, 1))
    assert preview_lines(preview) == lines_of(invoice)
    assert preview.total == invoice.total


def test_a_quantity_change_bills_the_old_quantity_for_its_time_and_the_new_one_at_the_end(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(platform), ItemSpec(seats, 2)], at=utc(2027, 4, 1)
    )

    change_preview = subscription_preview_change(
        subscription=subscription, items=[ItemSpec(platform), ItemSpec(seats, 4)], at=utc(2027, 4, 16)
    )
    subscription_change(subscription=subscription, items=[ItemSpec(platform), ItemSpec(seats, 4)], at=utc(2027, 4, 16))
    upcoming = upcoming_invoice(subscription=subscription, at=utc(2027, 4, 20))
    bill_at(utc(2027, 5, 1))

    invoice = renewal(subscription, utc(2027, 5, 1))
    # 2 seats for [1 Apr, 16 Apr): 2000 x 15/30 = 1000; 4 seats for [16 Apr, 1 May): 4000 x 15/30 = 2000.
    assert sorted(lines_of(invoice)) == sorted(
        [("Platform", 1000), ("Time used on Seats (in arrears)", 2000), ("Time used on Seats (in arrears)", 1000)]
    )
    assert change_preview.proration_total == 0  # nothing paid in advance: nothing credited
    assert sorted(preview_lines(change_preview.upcoming_invoice)) == sorted(lines_of(invoice))
    assert sorted(preview_lines(upcoming)) == sorted(lines_of(invoice))


def test_always_invoice_bills_the_used_part_at_once(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(seats, 2)], at=utc(2027, 4, 1))

    subscription_change(
        subscription=subscription, items=[ItemSpec(seats, 1)], at=utc(2027, 4, 11), proration="always_invoice"
    )

    immediate = Invoice.objects.get(subscription=subscription, billing_reason="subscription_update")
    # 2 seats for [1 Apr, 11 Apr): 2000 x 10/30 = 666.67 -> 667.
    assert lines_of(immediate) == [("Time used on Seats (in arrears)", 667)]
    assert not InvoiceItem.objects.filter(invoice__isnull=True).exists()


def test_a_plan_change_bills_the_old_arrears_item_and_nothing_for_the_new_until_the_end(arrears_plan, make_price):
    customer, platform, seats = arrears_plan
    premium = make_price(5000, nickname="Premium seats", billing_timing=Price.BillingTiming.IN_ARREARS)
    subscription = subscription_create(customer=customer, items=[ItemSpec(seats)], at=utc(2027, 4, 1))

    change = subscription_change(subscription=subscription, items=[ItemSpec(premium)], at=utc(2027, 4, 21))
    bill_at(utc(2027, 5, 1))

    assert change.proration_amount == 0
    # Seats [1 Apr, 21 Apr): 1000 x 20/30 = 666.67 -> 667; Premium [21 Apr, 1 May): 5000 x 10/30 = 1666.67 -> 1667.
    assert sorted(lines_of(renewal(subscription, utc(2027, 5, 1)))) == sorted(
        [("Time used on Premium seats (in arrears)", 1667), ("Time used on Seats (in arrears)", 667)]
    )


def test_cancelling_now_bills_the_used_part_on_the_final_invoice_and_credits_nothing_for_it(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(seats, 3)], at=utc(2027, 4, 1))

    subscription_cancel(subscription=subscription, at=utc(2027, 4, 11), at_period_end=False, prorate=True)

    final = Invoice.objects.get(subscription=subscription, billing_reason="subscription_update")
    # 3000 x 10/30 = 1000; prorate credits only what was paid in advance (nothing here).
    assert lines_of(final) == [("Time used on Seats (in arrears)", 1000)]
    assert not customer.balance_transactions.exists()


def test_cancelling_at_period_end_bills_the_whole_period_on_the_final_invoice(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(platform), ItemSpec(seats, 3)], at=utc(2027, 4, 1)
    )
    subscription_cancel(subscription=subscription, at=utc(2027, 4, 11), at_period_end=True)
    preview = upcoming_invoice(subscription=subscription, at=utc(2027, 4, 20))

    bill_at(utc(2027, 5, 1))

    final = Invoice.objects.filter(subscription=subscription).exclude(billing_reason="subscription_create").get()
    assert lines_of(final) == [("Seats (in arrears)", 3000)]
    assert preview_lines(preview) == lines_of(final)


def test_trial_time_is_free_in_arrears(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(seats, 2)], at=utc(2027, 4, 1), trial_days=30)

    bill_at(utc(2027, 5, 1))
    bill_at(utc(2027, 6, 1))

    assert not Invoice.objects.filter(subscription=subscription, period_start=utc(2027, 5, 1)).exists()
    assert lines_of(renewal(subscription, utc(2027, 6, 1))) == [("Seats (in arrears)", 2000)]


def test_a_pause_bills_the_time_used_and_the_paused_time_is_free(arrears_plan):
    customer, platform, seats = arrears_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(seats, 3)], at=utc(2027, 4, 1))

    subscription_pause(subscription=subscription, at=utc(2027, 4, 11), resumes_at=utc(2027, 4, 21))
    preview = upcoming_invoice(subscription=subscription, at=utc(2027, 4, 15))
    subscription_resume(subscription=subscription, at=utc(2027, 4, 21))
    bill_at(utc(2027, 5, 21))

    # [1 Apr, 11 Apr) used before the pause: 3000 x 10/30 = 1000; [11 Apr, 21 Apr) paused: nothing.
    resumed = renewal(subscription, utc(2027, 4, 21))
    assert lines_of(resumed) == [("Time used on Seats (in arrears)", 1000)]
    assert preview_lines(preview) == lines_of(resumed)
    # The new period [21 Apr, 21 May) in full, in arrears.
    assert lines_of(renewal(subscription, utc(2027, 5, 21))) == [("Seats (in arrears)", 3000)]


def test_an_arrears_price_must_be_recurring_and_licensed(make_price, meter_factory):
    with pytest.raises(Exception) as refused:
        make_price("1", usage_type=Price.UsageType.METERED, meter=meter_factory(), billing_timing="in_arrears")

    assert "price_arrears_is_recurring_licensed" in str(refused.value)


# -- minimum spend ----------------------------------------------------------------------------------


@pytest.fixture
def minimum_plan(make_customer, make_metered_price):
    customer = make_customer()
    calls = make_metered_price("0.5", nickname="API calls", minimum_amount=5000)
    return customer, calls


def _record_usage(customer, price, value: int, at) -> None:
    with time_machine.travel(at, tick=False):
        usage_events_record(
            events=[
                UsageEventInput(
                    customer_id=customer.pk,
                    meter_key=price.meter.key,
                    external_id=f"usage-{value}-{at.isoformat()}",
                    value=Decimal(value),
                    timestamp=at,
                )
            ]
        )


def test_usage_below_the_minimum_gets_a_true_up_line(minimum_plan):
    customer, calls = minimum_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(calls)], at=utc(2027, 4, 1))
    _record_usage(customer, calls, 2000, utc(2027, 4, 10))
    preview = upcoming_invoice(subscription=subscription, at=utc(2027, 4, 30))

    bill_at(utc(2027, 5, 1))

    invoice = renewal(subscription, utc(2027, 5, 1))
    # 2000 calls x 0.5 = 1000 < 5000: true-up 4000.
    assert lines_of(invoice) == [("API calls (usage)", 1000), ("Minimum spend adjustment for API calls", 4000)]
    assert preview_lines(preview) == lines_of(invoice)


def test_usage_above_the_minimum_has_no_true_up(minimum_plan):
    customer, calls = minimum_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(calls)], at=utc(2027, 4, 1))
    _record_usage(customer, calls, 20000, utc(2027, 4, 10))

    bill_at(utc(2027, 5, 1))

    assert lines_of(renewal(subscription, utc(2027, 5, 1))) == [("API calls (usage)", 10000)]


def test_the_minimum_is_prorated_for_a_partial_period(minimum_plan):
    customer, calls = minimum_plan
    subscription = subscription_create(customer=customer, items=[ItemSpec(calls)], at=utc(2027, 4, 1))

    subscription_cancel(subscription=subscription, at=utc(2027, 4, 16), at_period_end=False)

    final = Invoice.objects.get(subscription=subscription, billing_reason="subscription_update")
    # [1 Apr, 16 Apr) is 15 of 30 days: minimum 5000 x 15/30 = 2500; no usage.
    assert lines_of(final) == [("API calls (usage)", 0), ("Minimum spend adjustment for API calls", 2500)]


def test_a_minimum_on_a_licensed_price_is_refused(make_price):
    with pytest.raises(Exception) as refused:
        make_price(1000, minimum_amount=500)

    assert "price_minimum_is_metered" in str(refused.value)


def test_a_yearly_cycle_rule_on_the_creation(make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(12000, cycle=YEARLY))],
        at=utc(2027, 4, 1),
        billing_cycle_anchor_config=AnchorConfig(day_of_month=1, month=1, hour=0, minute=0, second=0),
    )

    assert subscription.current_period_end == utc(2028, 1, 1)
    # [1 Apr 2027, 1 Jan 2028) is 275 of the 365 days of [1 Jan 2027, 1 Jan 2028): 12000 x 275/365 = 9041.10.
    assert first_invoice(subscription).lines.get().amount == 9041
