"""A customer's year, end to end: trial, promotion code, usage, an upgrade, a one-off charge,
a scheduled downgrade, and a cancellation at period end, renewed by the billing run.

The customer lives in Paris; the subscription renews at 10:00 local time, which is
09:00 UTC in winter and 08:00 UTC in summer. VAT is 20 % (exclusive).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine

from billing.models import Coupon, PromotionCode, Subscription, SubscriptionChange
from billing.services.billing_run import billing_run_start
from billing.services.changes import subscription_change, subscription_preview_change
from billing.services.invoice_items import invoice_item_create
from billing.services.subscriptions import (
    ItemSpec,
    subscription_cancel,
    subscription_create,
    subscription_schedule_change,
)
from billing.services.upcoming import upcoming_invoice
from billing.services.usage import UsageEventInput, usage_events_record
from invoices.models import Invoice
from tests.billing.services.conftest import billing_brand, make_customer, make_metered_price, make_price, utc

__all__ = ["billing_brand", "make_customer", "make_metered_price", "make_price"]  # fixtures shared with services tests

pytestmark = pytest.mark.django_db


def record_calls(customer, meter, external_id, calls, at):
    with time_machine.travel(at, tick=False):
        result = usage_events_record(
            events=[
                UsageEventInput(
                    customer_id=customer.pk, meter_key=meter.key, external_id=external_id, value=calls, timestamp=at
                )
            ]
        )
    assert result.accepted == 1


def run_billing(as_of):
    with time_machine.travel(as_of, tick=False):
        return billing_run_start(as_of=as_of, inline=True)


def test_a_customers_subscription_from_trial_to_cancellation(make_customer, make_price, make_metered_price):
    customer = make_customer(timezone="Europe/Paris")
    pro, seat = make_price(2900, nickname="Pro"), make_price(1000, nickname="Seat")
    calls = make_metered_price("0.5", nickname="API calls")
    coupon = Coupon.objects.create(name="Launch", percent_off=Decimal(20), duration="repeating", duration_in_periods=2)
    PromotionCode.objects.create(coupon=coupon, code="LAUNCH", first_time_only=True)

    # 10 March, 10:00 in Paris: a 14-day trial with the LAUNCH code.
    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(pro), ItemSpec(seat, 3), ItemSpec(calls)],
        at=utc(2024, 3, 10, 9),
        trial_days=14,
        promotion_code="launch",
    )
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.trial_end == utc(2024, 3, 24, 9)
    record_calls(customer, calls.meter, "trial-calls", Decimal(5000), utc(2024, 3, 15))  # free: in the trial

    # 24 March: the trial ends; the first paid month (to 24 April, 10:00 CEST = 08:00 UTC) is billed:
    # 2900 + 3 x 1000 = 5900, -20 % = 4720, +20 % VAT = 5664. Trial usage is not billed.
    run_billing(utc(2024, 3, 24, 9))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert (subscription.current_period_start, subscription.current_period_end) == (
        utc(2024, 3, 24, 9),
        utc(2024, 4, 24, 8),
    )
    first = Invoice.objects.get(subscription=subscription, billing_reason="subscription_cycle")
    assert (first.subtotal, first.discount_total, first.total) == (5900, 1180, 5664)

    record_calls(customer, calls.meter, "april-calls", Decimal(10_000), utc(2024, 4, 1))

    # 8 April: 3 -> 5 seats. The period lasts 743 hours (31 days, less the hour of the switch to
    # summer time); 384 are left. Seats were paid 20 % off: 2400 x 384/743 = 1240.38 -> 1240 credited,
    # 4000 x 384/743 = 2067.29 -> 2067 charged.
    new_items = [ItemSpec(pro), ItemSpec(seat, 5), ItemSpec(calls)]
    preview = subscription_preview_change(subscription=subscription, items=new_items, at=utc(2024, 4, 8, 8))
    assert [line.amount for line in preview.proration_lines] == [-1240, 2067]
    subscription_change(subscription=subscription, items=new_items, at=utc(2024, 4, 8, 8))
    invoice_item_create(customer=customer, amount=1500, description="Onboarding workshop", at=utc(2024, 4, 10))

    # 24 April: the renewal. Pro 2900 + 5 seats 5000 in advance, April's 10 000 calls 5000, the
    # prorations -1240 + 2067 (already discounted) and the workshop 1500: subtotal 15 227.
    # The second and last discounted period: 20 % of 2900 + 5000 + 5000 + 1500 = 2880.
    # VAT: 20 % of 12 347 = 2469.4 -> 2469; total 14 816.
    expected = upcoming_invoice(subscription=subscription, at=utc(2024, 4, 23))
    run_billing(utc(2024, 4, 24, 8))
    second = Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle").latest("pk")
    assert (second.subtotal, second.discount_total, second.tax_total, second.total) == (15_227, 2880, 2469, 14_816)
    assert second.total == expected.total  # the upcoming invoice announced it

    # A downgrade to 2 seats at the end of the period, then no discount any more:
    # 2900 + 2000 = 4900, +20 % = 5880 (May had no calls).
    with time_machine.travel(utc(2024, 5, 2), tick=False):
        subscription_schedule_change(
            subscription=subscription, items=[ItemSpec(pro), ItemSpec(seat, 2), ItemSpec(calls)]
        )
    run_billing(utc(2024, 5, 24, 8))
    third = Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle").latest("pk")
    assert (third.subtotal, third.discount_total, third.total) == (4900, 0, 5880)
    assert subscription.items.get(price=seat).quantity == 2

    # Canceled at the end of June's period; June's 2000 calls are billed in arrears: 1000 + 20 %.
    subscription_cancel(subscription=subscription, at=utc(2024, 6, 1), at_period_end=True)
    record_calls(customer, calls.meter, "june-calls", Decimal(2000), utc(2024, 6, 10))
    run_billing(utc(2024, 6, 24, 8))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.ended_at == utc(2024, 6, 24, 8)
    final = Invoice.objects.filter(subscription=subscription).latest("pk")
    assert (final.subtotal, final.total) == (1000, 1200)

    numbers = Invoice.objects.filter(customer=customer).order_by("finalized_at", "pk").values_list("number", flat=True)
    assert [int(number.rsplit("-", 1)[1]) for number in numbers] == [1, 2, 3, 4, 5]  # gapless
    assert list(SubscriptionChange.objects.filter(subscription=subscription).values_list("kind", flat=True)) == [
        "create",
        "change",
        "scheduled",
        "cancel",
    ]
