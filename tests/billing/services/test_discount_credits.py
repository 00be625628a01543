"""Issue 16 item 1: unused time is credited at what was actually billed, amount-off coupons too."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Coupon, InvoiceItem
from billing.services.changes import subscription_change
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from invoices.selectors import customer_balance
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

# April 2024 has 30 days: 16 April 00:00 leaves 15 of them, exactly half.
HALF_WAY = utc(2024, 4, 16)


def _amount_off(amount: int, *, duration: str = Coupon.Duration.FOREVER) -> Coupon:
    return Coupon.objects.create(name=f"{amount} off", amount_off=amount, currency="EUR", duration=duration)


def test_cancelling_with_an_amount_off_coupon_credits_what_was_paid(make_customer, make_price):
    # given 3000 a month with 1000 off forever: April was billed 2000
    customer = make_customer()
    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(make_price(3000))],
        at=utc(2024, 4, 1),
        trial_days=0,
        coupon=_amount_off(1000),
    )
    # when it is cancelled half way with a credit for the unused time
    subscription_cancel(subscription=subscription, at=HALF_WAY, at_period_end=False, prorate=True)
    # then the credit is half of what was paid (1000), not half of the list price (1500)
    assert customer_balance(customer_id=customer.pk, currency="EUR") == 1000


def test_downgrading_with_an_amount_off_coupon_credits_what_was_paid(make_customer, make_price):
    # given 3000 a month with 1000 off forever
    customer = make_customer()
    pro, basic = make_price(3000), make_price(1500)
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(pro)], at=utc(2024, 4, 1), trial_days=0, coupon=_amount_off(1000)
    )
    # when it moves to 1500 a month half way
    subscription_change(subscription=subscription, items=[ItemSpec(basic)], at=HALF_WAY)
    # then the unused half of Pro is credited at 2000 a month (-1000), never at 3000 (-1500)
    credits = [item.amount for item in InvoiceItem.objects.filter(subscription=subscription, amount__lt=0)]
    assert credits == [-1000]


def test_a_removed_forever_coupon_then_a_plan_change_credits_what_was_paid(make_customer, make_price):
    # given 3000 a month with 20 % off forever: April was billed 2400, then the coupon is removed
    from billing.services.subscriptions import subscription_coupon_remove

    customer = make_customer()
    pro, basic = make_price(3000), make_price(1500)
    coupon = Coupon.objects.create(name="20 %", percent_off=Decimal("20"), duration=Coupon.Duration.FOREVER)
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(pro)], at=utc(2024, 4, 1), trial_days=0, coupon=coupon
    )
    subscription_coupon_remove(subscription=subscription, at=utc(2024, 4, 5))
    # when it moves to Basic half way
    subscription_change(subscription=subscription, items=[ItemSpec(basic)], at=HALF_WAY)
    # then Pro's unused half is credited at what April cost (2400 / 2), not at the list price
    credits = [item.amount for item in InvoiceItem.objects.filter(subscription=subscription, amount__lt=0)]
    assert credits == [-1200]
