from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from billing.models import Coupon, PromotionCode, Subscription
from billing.services.coupons import (
    CouponError,
    coupon_redeem,
    discount_periods_advance_bulk,
    discounts_for_period,
    promotion_code_resolve,
)
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.subscriptions.common import mrr_of
from invoices.models import Invoice
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

NOW = utc(2024, 4, 1)


def percent_coupon(**fields) -> Coupon:
    fields.setdefault("name", "Spring")
    fields.setdefault("percent_off", Decimal(10))
    return Coupon.objects.create(**fields)


def redeem_error(**kwargs) -> str:
    with pytest.raises(CouponError) as error, transaction.atomic():
        coupon_redeem(**kwargs)
    return error.value.code


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"active": False}, "inactive"),
        ({"redeem_by": NOW}, "expired"),
        ({"max_redemptions": 2, "times_redeemed": 2}, "max_redemptions"),
        ({"percent_off": None, "amount_off": 500, "currency": "USD"}, "currency"),
    ],
)
def test_a_coupon_is_refused_for_each_reason(fields, code, make_customer):
    coupon = percent_coupon(**fields)

    assert redeem_error(coupon=coupon, customer=make_customer(), at=NOW, currency="EUR") == code


def test_a_coupon_limited_to_other_products_is_refused(make_customer, product_factory):
    coupon = percent_coupon()
    coupon.applies_to.add(product_factory())

    code = redeem_error(coupon=coupon, customer=make_customer(), at=NOW, product_ids={product_factory().pk})

    assert code == "products"


def test_redeeming_counts_once(make_customer):
    coupon = percent_coupon(max_redemptions=1)

    coupon_redeem(coupon=coupon, customer=make_customer(), at=NOW)

    coupon.refresh_from_db()
    assert coupon.times_redeemed == 1
    assert redeem_error(coupon=coupon, customer=make_customer(), at=NOW) == "max_redemptions"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"active": False}, "inactive"),
        ({"expires_at": NOW - timedelta(seconds=1)}, "expired"),
        ({"max_redemptions": 1, "times_redeemed": 1}, "max_redemptions"),
        ({"customer": "other"}, "customer"),
        ({"first_time_only": True}, "first_time"),
        ({"coupon_active": False}, "inactive"),
    ],
)
def test_a_promotion_code_is_refused_for_each_reason(fields, code, make_customer, make_price):
    customer = make_customer()
    if fields.get("customer") == "other":
        fields["customer"] = make_customer()
    if fields.get("first_time_only"):
        subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=NOW - timedelta(days=40))
    coupon = percent_coupon(active=fields.pop("coupon_active", True))
    PromotionCode.objects.create(coupon=coupon, code="SPRING24", **fields)

    with pytest.raises(CouponError) as error:
        promotion_code_resolve(code="SPRING24", customer=customer, at=NOW)

    assert error.value.code == code


def test_an_unknown_promotion_code(make_customer):
    with pytest.raises(CouponError) as error:
        promotion_code_resolve(code="NOPE", customer=make_customer(), at=NOW)

    assert error.value.code == "unknown"


def test_a_promotion_code_is_typed_in_any_case_and_counts_for_both(make_customer, make_price):
    coupon = percent_coupon()
    code = PromotionCode.objects.create(coupon=coupon, code="SPRING24", first_time_only=True)

    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900))], at=NOW, promotion_code=" spring24 "
    )

    assert subscription.coupon == coupon and subscription.promotion_code == code
    code.refresh_from_db()
    coupon.refresh_from_db()
    assert (code.times_redeemed, coupon.times_redeemed) == (1, 1)
    assert Invoice.objects.get(subscription=subscription).discount_total == 290


def test_an_amount_off_coupon_limited_to_a_product_discounts_only_its_lines(make_customer, make_price):
    plan, addon = make_price(2900), make_price(1000)
    coupon = Coupon.objects.create(name="Add-on offer", amount_off=400, currency="EUR", duration="forever")
    coupon.applies_to.add(addon.product)

    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(plan), ItemSpec(addon)], at=NOW, coupon=coupon
    )

    lines = Invoice.objects.get(subscription=subscription).lines.order_by("position")
    assert list(lines.values_list("amount", "discount_amount")) == [(2900, 0), (1000, 400)]


@pytest.mark.parametrize(
    ("duration", "periods", "expected"),
    [
        ("once", None, [True, False, False, False]),
        ("repeating", 2, [True, True, False, False]),
        ("forever", None, [True, True, True, True]),
    ],
)
def test_how_many_periods_a_discount_lasts(duration, periods, expected, make_customer, make_price):
    coupon = percent_coupon(duration=duration, duration_in_periods=periods)
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900))], at=NOW, coupon=coupon
    )
    discounted = [Invoice.objects.get(subscription=subscription).discount_total > 0]

    for _renewal in range(3):
        subscription = Subscription.objects.get(pk=subscription.pk)
        discounted.append(bool(discounts_for_period(subscription=subscription)))
        discount_periods_advance_bulk(subscription_ids=[subscription.pk])

    assert discounted == expected


def test_mrr_counts_a_forever_discount_but_not_a_once_one(make_customer, make_price):
    price = make_price(2900)
    forever = subscription_create(
        customer=make_customer(), items=[ItemSpec(price)], at=NOW, coupon=percent_coupon(duration="forever")
    )
    once = subscription_create(
        customer=make_customer(), items=[ItemSpec(price)], at=NOW, coupon=percent_coupon(duration="once")
    )

    assert (mrr_of(subscription=forever), mrr_of(subscription=once)) == (2610, 2900)
