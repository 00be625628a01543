"""The preview of a new subscription's first invoice: writes nothing, and equals what the creation issues."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.errors import CustomerCurrencyMismatch
from billing.models import Coupon, InvoiceItem, Price, PromotionCode, Subscription
from billing.services.coupons import CouponError
from billing.services.modes import ModeMismatch
from billing.services.subscriptions import ItemSpec, subscription_create, subscription_preview_create
from invoices.models import Invoice
from tests.billing.services.conftest import utc
from tests.billing.services.test_preview import row_counts

pytestmark = pytest.mark.django_db


def issued(subscription: Subscription) -> Invoice:
    return subscription.invoices.get()


def assert_same_invoice(preview, invoice: Invoice) -> None:
    first = preview.first_invoice
    assert (first.subtotal, first.totals.discount_total, first.totals.tax_total, first.total, first.amount_due) == (
        invoice.subtotal,
        invoice.discount_total,
        invoice.tax_total,
        invoice.total,
        invoice.amount_due,
    )
    assert [(line.draft.description, line.totals.amount) for line in first.lines] == [
        (line.description, line.amount) for line in invoice.lines.order_by("pk")
    ]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"trial_days": 14},
        {"billing_cycle_anchor": utc(2024, 4, 15)},
        {"collection_method": "send_invoice", "days_until_due": 15},
        {"coupon": "percent"},
    ],
    ids=["plain", "trial", "anchor", "send-invoice", "coupon"],
)
def test_the_preview_is_the_first_invoice_the_creation_issues(options, make_customer, make_price):
    customer = make_customer()
    plan, seats = make_price(4900), make_price(1000)
    setup = make_price(5000, type=Price.Type.ONE_TIME)
    InvoiceItem.objects.create(customer=customer, description="Onboarding", amount=2500, currency="EUR", quantity=1)
    if options.get("coupon"):
        options = {"coupon": Coupon.objects.create(name="Launch", percent_off=Decimal(20), duration="forever")}
    items = [ItemSpec(plan), ItemSpec(seats, 3), ItemSpec(setup)]
    before = row_counts()

    preview = subscription_preview_create(customer=customer, items=items, at=utc(2024, 4, 1), **options)

    assert row_counts() == before
    subscription = subscription_create(customer=customer, items=items, at=utc(2024, 4, 1), **options)
    assert_same_invoice(preview, issued(subscription))
    assert preview.current_period_end == subscription.current_period_end
    assert preview.trial_end == subscription.trial_end and preview.status == subscription.status
    assert preview.mrr == subscription.changes.get().mrr_after


def test_the_preview_uses_a_promotion_code_as_the_creation_does(make_customer, make_price):
    customer = make_customer()
    coupon = Coupon.objects.create(name="Spring", amount_off=1000, currency="EUR", duration="once")
    PromotionCode.objects.create(coupon=coupon, code="SPRING")
    price = make_price(4900)

    preview = subscription_preview_create(
        customer=customer, items=[ItemSpec(price)], at=utc(2024, 4, 1), promotion_code="spring"
    )

    assert preview.first_invoice.totals.discount_total == 1000
    subscription = subscription_create(
        customer=customer, items=[ItemSpec(price)], at=utc(2024, 4, 1), promotion_code="spring"
    )
    assert_same_invoice(preview, issued(subscription))


def test_the_preview_refuses_what_the_creation_refuses(make_customer, make_price):
    customer = make_customer()
    dollars = make_price(4900, currency="USD")
    other_mode = make_price(4900, livemode=False)
    spent = Coupon.objects.create(name="Gone", percent_off=Decimal(10), duration="once", max_redemptions=0)
    price = make_price(4900)

    with pytest.raises(CustomerCurrencyMismatch):
        subscription_preview_create(customer=customer, items=[ItemSpec(dollars)])
    with pytest.raises(ModeMismatch):
        subscription_preview_create(customer=customer, items=[ItemSpec(other_mode)])
    with pytest.raises(CouponError):
        subscription_preview_create(customer=customer, items=[ItemSpec(price)], coupon=spent)
