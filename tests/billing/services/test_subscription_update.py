"""subscription_update: Stripe's subscription update as one all-or-nothing service."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from billing.errors import SubscriptionConflict, SubscriptionError
from billing.models import Coupon, InvoiceItem, Subscription, SubscriptionItem
from billing.services.subscriptions import ItemSpec, subscription_cancel, subscription_create
from billing.services.subscriptions.update import (
    ItemUpdate,
    SubscriptionUpdate,
    UpdateRefused,
    subscription_update,
)
from config.events.models import DomainEvent
from invoices.models import Invoice
from tests.billing.services.conftest import utc

pytestmark = pytest.mark.django_db

Status = Subscription.Status


def refused(error, **arguments):
    with pytest.raises(error) as caught, transaction.atomic():
        subscription_update(**arguments)
    return caught.value


@pytest.fixture
def active(make_customer, make_price):
    # 30-day April: 100.00 EUR a month, 2 seats, from 1 April.
    return subscription_create(customer=make_customer(), items=[ItemSpec(make_price(10000), 2)], at=utc(2024, 4, 1))


def _item(subscription):
    return SubscriptionItem.objects.get(subscription=subscription)


def test_quantity_change_prorates_onto_the_next_invoice(active):
    # 2 -> 3 seats on 16 April (15 of 30 days left): + 100.00 x 15/30 = +50.00 pending.
    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(items=(ItemUpdate(id=_item(active).pk, quantity=3),)),
        at=utc(2024, 4, 16),
    )

    assert _item(active).quantity == 3
    pending = InvoiceItem.objects.filter(subscription=active, invoice__isnull=True, proration=True)
    assert sum(item.amount for item in pending) == 5000


def test_items_add_and_delete_follow_stripe_semantics(active, make_price):
    extra = make_price(3000)
    row = _item(active)

    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(items=(ItemUpdate(price=extra, quantity=2),), proration_behavior="none"),
        at=utc(2024, 4, 10),
    )
    assert {(r.price_id, r.quantity) for r in active.items.all()} == {(row.price_id, 2), (extra.pk, 2)}

    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(items=(ItemUpdate(id=row.pk, deleted=True),), proration_behavior="none"),
        at=utc(2024, 4, 11),
    )
    assert [(r.price_id, r.quantity) for r in active.items.all()] == [(extra.pk, 2)]


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (ItemUpdate(id=999_999, quantity=2), "item_not_found"),
        (ItemUpdate(deleted=True), "item_id_required"),
        (ItemUpdate(quantity=2), "item_price_required"),
    ],
)
def test_bad_item_entries_are_refused(active, item, code):
    error = refused(UpdateRefused, subscription=active, changes=SubscriptionUpdate(items=(item,)), at=utc(2024, 4, 5))
    assert error.problem_code == code


def test_deleting_the_last_item_is_refused(active):
    refused(
        SubscriptionError,
        subscription=active,
        changes=SubscriptionUpdate(items=(ItemUpdate(id=_item(active).pk, deleted=True),)),
        at=utc(2024, 4, 5),
    )
    assert _item(active).quantity == 2


def test_a_refused_part_refuses_the_whole_update(active):
    # The quantity and metadata would be fine; the cancellation date is in the past.
    error = refused(
        UpdateRefused,
        subscription=active,
        changes=SubscriptionUpdate(
            items=(ItemUpdate(id=_item(active).pk, quantity=5),),
            metadata={"plan": "team"},
            cancel_at=utc(2024, 4, 1),
        ),
        at=utc(2024, 4, 5),
    )
    assert error.problem_code == "cancel_at_past"
    active.refresh_from_db()
    assert _item(active).quantity == 2 and active.metadata == {}
    assert not InvoiceItem.objects.filter(subscription=active).exists()


def test_a_failure_after_validation_rolls_everything_back(active):
    # A coupon in another currency passes the parameter checks but is refused when redeemed,
    # after the quantity change was written: the transaction undoes it.
    usd_coupon = Coupon.objects.create(name="Dollars", amount_off=500, currency="USD", duration="once")
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 - any refusal will do
        subscription_update(
            subscription=active,
            changes=SubscriptionUpdate(items=(ItemUpdate(id=_item(active).pk, quantity=5),), coupon=usd_coupon),
            at=utc(2024, 4, 5),
        )
    assert _item(active).quantity == 2
    assert not InvoiceItem.objects.filter(subscription=active).exists()


def test_canceled_subscription_is_a_conflict(active):
    subscription_cancel(subscription=active, at=utc(2024, 4, 3), at_period_end=False)
    error = refused(
        SubscriptionConflict, subscription=active, changes=SubscriptionUpdate(metadata={"a": "b"}), at=utc(2024, 4, 5)
    )
    assert error.problem_code == "subscription_canceled"


def test_metadata_merges_and_empty_values_remove_keys(active):
    Subscription.objects.filter(pk=active.pk).update(metadata={"keep": "1", "drop": "2"})

    subscription_update(
        subscription=active, changes=SubscriptionUpdate(metadata={"drop": "", "new": "3"}), at=utc(2024, 4, 5)
    )

    active.refresh_from_db()
    assert active.metadata == {"keep": "1", "new": "3"}


def test_collection_method_switch_gives_default_terms_and_back(active):
    subscription_update(
        subscription=active, changes=SubscriptionUpdate(collection_method="send_invoice"), at=utc(2024, 4, 5)
    )
    active.refresh_from_db()
    assert (active.collection_method, active.days_until_due) == ("send_invoice", 30)

    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(collection_method="charge_automatically"),
        at=utc(2024, 4, 6),
    )
    active.refresh_from_db()
    assert (active.collection_method, active.days_until_due) == ("charge_automatically", None)


def test_terms_with_automatic_charge_are_refused(active):
    error = refused(UpdateRefused, subscription=active, changes=SubscriptionUpdate(days_until_due=10))
    assert error.problem_code == "terms"


def test_cancel_at_then_undo_with_null(active):
    subscription_update(subscription=active, changes=SubscriptionUpdate(cancel_at=utc(2024, 6, 15)), at=utc(2024, 4, 5))
    active.refresh_from_db()
    assert active.cancel_at == utc(2024, 6, 15)

    subscription_update(subscription=active, changes=SubscriptionUpdate(cancel_at=None), at=utc(2024, 4, 6))
    active.refresh_from_db()
    assert active.cancel_at is None and active.canceled_at is None


def test_cancel_at_period_end_true_then_false(active):
    subscription_update(subscription=active, changes=SubscriptionUpdate(cancel_at_period_end=True), at=utc(2024, 4, 5))
    active.refresh_from_db()
    assert active.cancel_at_period_end

    subscription_update(subscription=active, changes=SubscriptionUpdate(cancel_at_period_end=False), at=utc(2024, 4, 6))
    active.refresh_from_db()
    assert not active.cancel_at_period_end


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (SubscriptionUpdate(cancel_at=utc(2024, 6, 1), cancel_at_period_end=True), "parameter_conflict"),
        (SubscriptionUpdate(cancel_at=utc(2099, 1, 1)), "cancel_at_too_far"),
        (SubscriptionUpdate(trial_end=utc(2024, 4, 4)), "trial_end_past"),
        (SubscriptionUpdate(trial_end=utc(2030, 1, 1)), "invalid_trial"),
        (SubscriptionUpdate(billing_cycle_anchor_now=True, trial_end=utc(2024, 5, 1)), "parameter_conflict"),
        (SubscriptionUpdate(proration_behavior="sometimes"), "proration_mode"),
        (SubscriptionUpdate(metadata={"k" * 41: "v"}), "metadata_key"),
        (SubscriptionUpdate(metadata={"k": "v" * 501}), "metadata_value"),
        (SubscriptionUpdate(payment_behavior="pending_if_incomplete"), "pending_update_no_change"),
        (
            SubscriptionUpdate(payment_behavior="pending_if_incomplete", metadata={"a": "b"}),
            "pending_update_parameters",
        ),
    ],
)
def test_unhappy_parameters_are_refused(active, changes, code):
    error = refused(UpdateRefused, subscription=active, changes=changes, at=utc(2024, 4, 5))
    assert error.problem_code == code


def test_trial_end_now_on_an_active_subscription_is_a_conflict(active):
    error = refused(SubscriptionConflict, subscription=active, changes=SubscriptionUpdate(trial_end="now"))
    assert error.problem_code == "not_trialing"


def test_adding_a_trial_credits_unused_time_and_starts_the_trial(active):
    # 2 x 100.00 paid for April; trial added on 16 April: 15/30 unused = -100.00 pending credit.
    subscription_update(subscription=active, changes=SubscriptionUpdate(trial_end=utc(2024, 5, 1)), at=utc(2024, 4, 16))

    active.refresh_from_db()
    assert active.status == Status.TRIALING
    assert (active.trial_start, active.trial_end) == (utc(2024, 4, 16), utc(2024, 5, 1))
    assert (active.current_period_start, active.current_period_end) == (utc(2024, 4, 16), utc(2024, 5, 1))
    credit = InvoiceItem.objects.filter(subscription=active, proration=True)
    assert sum(item.amount for item in credit) == -10000


def test_adding_a_trial_without_proration_credits_nothing(active):
    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(trial_end=utc(2024, 5, 1), proration_behavior="none"),
        at=utc(2024, 4, 16),
    )
    active.refresh_from_db()
    assert active.status == Status.TRIALING
    assert not InvoiceItem.objects.filter(subscription=active).exists()


def test_trial_end_moves_both_ways_and_now_ends_it(make_customer, make_price):
    trialing = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(4900))], at=utc(2024, 4, 1), trial_days=14
    )
    subscription_update(
        subscription=trialing, changes=SubscriptionUpdate(trial_end=utc(2024, 4, 25)), at=utc(2024, 4, 2)
    )
    trialing.refresh_from_db()
    assert trialing.trial_end == trialing.current_period_end == utc(2024, 4, 25)

    subscription_update(
        subscription=trialing, changes=SubscriptionUpdate(trial_end=utc(2024, 4, 10)), at=utc(2024, 4, 3)
    )
    trialing.refresh_from_db()
    assert trialing.trial_end == trialing.current_period_end == utc(2024, 4, 10)

    subscription_update(subscription=trialing, changes=SubscriptionUpdate(trial_end="now"), at=utc(2024, 4, 4))
    trialing.refresh_from_db()
    assert trialing.status == Status.ACTIVE
    assert trialing.current_period_start == utc(2024, 4, 4)
    assert Invoice.objects.filter(subscription_id=trialing.pk, total__gt=0).count() == 1


def test_anchor_now_restarts_the_cycle_and_invoices_at_once(active):
    # 16 April: -100.00 unused (2 x 100.00 x 15/30) + 200.00 for 16 April - 16 May = 100.00 net, + 20 % VAT.
    subscription_update(
        subscription=active, changes=SubscriptionUpdate(billing_cycle_anchor_now=True), at=utc(2024, 4, 16)
    )

    active.refresh_from_db()
    assert active.billing_cycle_anchor == active.current_period_start == utc(2024, 4, 16)
    assert active.current_period_end == utc(2024, 5, 16)
    invoice = Invoice.objects.filter(subscription_id=active.pk, billing_reason="subscription_update").get()
    assert invoice.subtotal == 10000


def test_anchor_now_during_a_trial_is_refused(make_customer, make_price):
    trialing = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(4900))], at=utc(2024, 4, 1), trial_days=14
    )
    error = refused(
        UpdateRefused,
        subscription=trialing,
        changes=SubscriptionUpdate(billing_cycle_anchor_now=True),
        at=utc(2024, 4, 2),
    )
    assert error.problem_code == "anchor_in_trial"


def test_coupon_add_and_remove(active):
    coupon = Coupon.objects.create(name="Loyal", percent_off=Decimal(10), duration="forever")
    subscription_update(subscription=active, changes=SubscriptionUpdate(coupon=coupon), at=utc(2024, 4, 5))
    active.refresh_from_db()
    assert active.coupon_id == coupon.pk

    subscription_update(subscription=active, changes=SubscriptionUpdate(coupon=None), at=utc(2024, 4, 6))
    active.refresh_from_db()
    assert active.coupon_id is None
    assert DomainEvent.objects.filter(type="customer.discount.deleted", object_id=str(active.pk)).exists()


def test_one_update_records_updated_events(active):
    before = DomainEvent.objects.filter(type="customer.subscription.updated").count()
    subscription_update(
        subscription=active,
        changes=SubscriptionUpdate(items=(ItemUpdate(id=_item(active).pk, quantity=3),), metadata={"a": "b"}),
        at=utc(2024, 4, 5),
    )
    assert DomainEvent.objects.filter(type="customer.subscription.updated").count() > before
