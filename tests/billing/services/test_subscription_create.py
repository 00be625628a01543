from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from billing.models import Coupon, InvoiceItem, Price, Subscription, SubscriptionChange
from billing.services.invoice_items import invoice_item_create
from billing.services.subscriptions import ItemSpec, SubscriptionError, subscription_create
from config.events.models import DomainEvent
from invoices.models import Invoice
from tests.billing.services.conftest import YEARLY, utc

pytestmark = pytest.mark.django_db


def test_a_subscription_bills_its_first_period_in_advance_at_once(make_customer, make_price):
    customer = make_customer()
    plan, seats = make_price(2900, nickname="Pro"), make_price(1000, nickname="Seat")

    subscription = subscription_create(
        customer=customer, items=[ItemSpec(plan), ItemSpec(seats, 3)], at=utc(2024, 4, 10, 8, 30, 15, 999)
    )

    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.currency == "EUR"
    # Instants are kept to the second; the first period runs one month from the start.
    assert (subscription.current_period_start, subscription.current_period_end) == (
        utc(2024, 4, 10, 8, 30, 15),
        utc(2024, 5, 10, 8, 30, 15),
    )
    assert sorted(subscription.items.values_list("price__nickname", "quantity")) == [("Pro", 1), ("Seat", 3)]
    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.billing_reason == "subscription_create"
    assert invoice.status == Invoice.Status.OPEN and invoice.number
    assert list(invoice.lines.values_list("description", "amount")) == [("Pro", 2900), ("Seat", 3000)]
    assert invoice.total == 5900 + 1180
    assert DomainEvent.objects.filter(type="customer.subscription.created", object_id=str(subscription.pk)).exists()
    change = SubscriptionChange.objects.get(subscription=subscription)
    assert (change.kind, change.mrr_before, change.mrr_after) == ("create", 0, 5900)


def test_a_billing_cycle_anchor_prorates_the_first_period(make_customer, make_price):
    # Started 16 April, anchored on 1 May: the first period is 15 of April's 30 days.
    customer = make_customer()

    subscription = subscription_create(
        customer=customer,
        items=[ItemSpec(make_price(2900))],
        at=utc(2024, 4, 16),
        billing_cycle_anchor=utc(2024, 5, 1),
    )

    assert subscription.current_period_end == utc(2024, 5, 1)
    line = Invoice.objects.get(subscription=subscription).lines.get()
    assert (line.amount, line.period_start, line.period_end) == (1450, utc(2024, 4, 16), utc(2024, 5, 1))


def test_a_trial_issues_a_zero_invoice_and_bills_after_it(make_customer, make_price):
    customer = make_customer(timezone="Europe/Paris")
    price = make_price(2900, trial_days=14)

    subscription = subscription_create(customer=customer, items=[ItemSpec(price)], at=utc(2024, 3, 20, 9))

    # 14 days in Paris cross the switch to summer time: same wall-clock time, one hour less in UTC.
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.trial_end == utc(2024, 4, 3, 8)
    assert subscription.current_period_end == subscription.trial_end
    assert subscription.billing_cycle_anchor == subscription.trial_end
    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.total == 0 and invoice.status == Invoice.Status.PAID
    assert invoice.lines.get().description.startswith("Trial period")


def test_trial_days_zero_overrides_the_price_trial(make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900, trial_days=30))], at=utc(2024, 4, 1), trial_days=0
    )

    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.trial_end is None


def test_one_time_prices_go_on_the_first_invoice(make_customer, make_price):
    customer = make_customer()
    setup_fee = make_price(5000, type=Price.Type.ONE_TIME, nickname="Setup")

    subscription = subscription_create(
        customer=customer, items=[ItemSpec(make_price(2900)), ItemSpec(setup_fee)], at=utc(2024, 4, 1)
    )

    assert subscription.items.count() == 1
    invoice = Invoice.objects.get(subscription=subscription)
    assert sorted(invoice.lines.values_list("kind", "amount")) == [("one_off", 5000), ("subscription", 2900)]
    assert InvoiceItem.objects.get(price=setup_fee).invoice == invoice


def test_the_first_invoice_sweeps_the_customers_pending_items(make_customer, make_price):
    customer = make_customer()
    item = invoice_item_create(customer=customer, amount=1200, description="Onboarding call", at=utc(2024, 3, 30))

    subscription = subscription_create(customer=customer, items=[ItemSpec(make_price(2900))], at=utc(2024, 4, 1))

    item.refresh_from_db()
    assert item.invoice.subscription == subscription


def test_send_invoice_has_net_terms(make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(2900))],
        at=utc(2024, 4, 1),
        collection_method="send_invoice",
        days_until_due=45,
    )

    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.collection_method == "send_invoice"
    assert invoice.due_at == utc(2024, 5, 16)


def test_send_invoice_defaults_to_net_30(make_customer, make_price):
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(2900))],
        at=utc(2024, 4, 1),
        collection_method="send_invoice",
    )

    assert subscription.days_until_due == 30


def test_metered_items_are_not_billed_in_advance(make_customer, make_price, make_metered_price):
    subscription = subscription_create(
        customer=make_customer(),
        items=[ItemSpec(make_price(2900)), ItemSpec(make_metered_price(), 7)],
        at=utc(2024, 4, 1),
    )

    assert Invoice.objects.get(subscription=subscription).lines.count() == 1
    assert subscription.items.get(price__usage_type="metered").quantity == 1


def test_a_coupon_discounts_the_first_invoice(make_customer, make_price):
    coupon = Coupon.objects.create(name="Welcome", percent_off=Decimal(10), duration="once")

    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(2900))], at=utc(2024, 4, 1), coupon=coupon
    )

    invoice = Invoice.objects.get(subscription=subscription)
    assert (invoice.discount_total, invoice.total) == (290, 3132)
    coupon.refresh_from_db()
    assert coupon.times_redeemed == 1


@pytest.mark.parametrize(
    ("items", "code"),
    [
        ([], "no_items"),
        ([("monthly", 0)], "invalid_quantity"),
        ([("monthly", 1), ("monthly", 2)], "duplicate_price"),
        ([("monthly", 1), ("yearly", 1)], "mixed_cycles"),
        ([("monthly", 1), ("usd", 1)], "mixed_currencies"),
        ([("archived", 1)], "archived_price"),
        ([("one_time", 1)], "no_recurring_price"),
    ],
)
def test_invalid_items_are_refused_with_a_clear_error(items, code, make_customer, make_price):
    prices = {
        "monthly": make_price(2900),
        "yearly": make_price(29000, cycle=YEARLY),
        "usd": make_price(2900, currency="USD"),
        "archived": make_price(2900, active=False),
        "one_time": make_price(2900, type=Price.Type.ONE_TIME),
    }

    customer = make_customer()

    with pytest.raises(SubscriptionError) as error, transaction.atomic():
        subscription_create(customer=customer, items=[ItemSpec(prices[name], quantity) for name, quantity in items])

    assert error.value.code == code
    assert not Subscription.objects.exists()
