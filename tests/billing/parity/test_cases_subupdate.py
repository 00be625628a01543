"""Hand-worked cases for subscription updates (issue 16 items 2 and 12), run through the real services.

Every case starts from one subscription created on 1 April 2024 (a 30-day month, UTC customer,
French 20 % VAT), monthly, 100.00 EUR a seat, unless the row says otherwise, and applies one
`subscription_update` on 16 April 00:00 (15 of 30 days left: factor 1/2).

Sources: Stripe's "Prorations" page (https://docs.stripe.com/billing/subscriptions/prorations):
an upgrade halfway through a period credits half of the old price and charges half of the new,
invoiced on the next invoice (`create_prorations`), at once (`always_invoice`) or not (`none`);
Stripe's "Billing cycle" page (https://docs.stripe.com/billing/subscriptions/billing-cycle):
`billing_cycle_anchor=now` invoices the new period at once with a credit for unused time;
Stripe's "Trial periods" page (https://docs.stripe.com/billing/subscriptions/trials): a trial
added to an active subscription ends the current period and credits the unused time per
proration_behavior; Stripe's "Cancel subscriptions" page: `cancel_at` and its removal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pytest

from billing.models import InvoiceItem, SubscriptionItem
from billing.services.subscriptions import ItemSpec, subscription_create
from billing.services.subscriptions.update import ItemUpdate, SubscriptionUpdate, subscription_update
from billing.services.upcoming import upcoming_invoice
from invoices.models import Invoice
from tests.billing.services.conftest import billing_brand, make_customer, make_price, utc  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGE_AT = utc(2024, 4, 16)


@dataclass(frozen=True)
class Case:
    name: str
    seats: int
    changes: dict  # SubscriptionUpdate fields; "quantity"/"new_price" are item shortcuts
    pending_total: int  # pending proration items after the update (next invoice)
    update_invoice_subtotal: int | None  # the invoice issued at once, if any
    status: str = "active"
    period: tuple[datetime, datetime] = (utc(2024, 4, 1), utc(2024, 5, 1))
    extra: dict = field(default_factory=dict)


CASES = [
    # Stripe "Prorations", halfway upgrade. 2 -> 3 seats: -2 x 100.00 x 1/2 + 3 x 100.00 x 1/2
    # = -100.00 + 150.00 = +50.00 left pending for the 1 May invoice.
    Case("quantity up, create_prorations", 2, {"quantity": 3, "proration_behavior": "create_prorations"}, 5000, None),
    # Same arithmetic, invoiced at once: subtotal 50.00 (+ 20 % VAT = 60.00).
    Case("quantity up, always_invoice", 2, {"quantity": 3, "proration_behavior": "always_invoice"}, 0, 5000),
    # proration_behavior=none: the quantity changes, nothing is billed for the rest of April.
    Case("quantity up, none", 2, {"quantity": 3, "proration_behavior": "none"}, 0, None),
    # Stripe "Prorations": upgrade 100.00 -> 200.00 a month halfway: -50.00 + 100.00 = +50.00.
    Case("price upgrade halfway, create_prorations", 1, {"new_price": 20000}, 5000, None),
    # Stripe "Trial periods": trial added on 16 April to 2 seats: credit -2 x 100.00 x 1/2 = -100.00
    # pending; the period becomes the trial, 16 April -> 1 May.
    Case(
        "trial added to an active subscription, create_prorations",
        2,
        {"trial_end": utc(2024, 5, 1)},
        -10000,
        None,
        status="trialing",
        period=(CHANGE_AT, utc(2024, 5, 1)),
    ),
    # The same credit invoiced at once: a credit invoice of subtotal -100.00.
    Case(
        "trial added, always_invoice",
        2,
        {"trial_end": utc(2024, 5, 1), "proration_behavior": "always_invoice"},
        0,
        -10000,
        status="trialing",
        period=(CHANGE_AT, utc(2024, 5, 1)),
    ),
    # Stripe "Billing cycle": anchor reset on 16 April, 2 seats: -100.00 unused + 200.00 for
    # 16 April -> 16 May = subtotal 100.00, invoiced at once.
    Case(
        "billing_cycle_anchor=now, create_prorations",
        2,
        {"billing_cycle_anchor_now": True},
        0,
        10000,
        period=(CHANGE_AT, utc(2024, 5, 16)),
    ),
    # The reset without proration: the new period in full, 2 x 100.00 = 200.00, no credit.
    Case(
        "billing_cycle_anchor=now, none",
        2,
        {"billing_cycle_anchor_now": True, "proration_behavior": "none"},
        0,
        20000,
        period=(CHANGE_AT, utc(2024, 5, 16)),
    ),
    # Stripe "Cancel subscriptions": cancel_at 15 June, then cancel_at=null (hand-worked: the
    # 1 May renewal stays 2 x 100.00 + 20 % = 240.00 and nothing else moves).
    Case(
        "cancel_at then undo",
        2,
        {"cancel_at": utc(2024, 6, 15)},
        0,
        None,
        extra={"then": {"cancel_at": None}, "upcoming_due": 24000},
    ),
]


def _changes(subscription, make_price, spec: dict) -> SubscriptionUpdate:  # noqa: F811
    spec = dict(spec)
    item = SubscriptionItem.objects.get(subscription=subscription)
    items = ()
    if "quantity" in spec:
        items = (ItemUpdate(id=item.pk, quantity=spec.pop("quantity")),)
    if "new_price" in spec:
        items = (ItemUpdate(id=item.pk, price=make_price(spec.pop("new_price"))),)
    return SubscriptionUpdate(items=items, **spec)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_subscription_update_case(case: Case, make_customer, make_price):  # noqa: F811
    subscription = subscription_create(
        customer=make_customer(), items=[ItemSpec(make_price(10000), case.seats)], at=utc(2024, 4, 1)
    )
    first_invoice = Invoice.objects.get(subscription_id=subscription.pk)

    subscription_update(
        subscription=subscription, changes=_changes(subscription, make_price, case.changes), at=CHANGE_AT
    )
    if "then" in case.extra:
        subscription_update(
            subscription=subscription, changes=_changes(subscription, make_price, case.extra["then"]), at=CHANGE_AT
        )

    subscription.refresh_from_db()
    pending = InvoiceItem.objects.filter(subscription_id=subscription.pk, invoice__isnull=True)
    assert sum(item.amount for item in pending) == case.pending_total
    issued = Invoice.objects.filter(subscription_id=subscription.pk).exclude(pk=first_invoice.pk)
    if case.update_invoice_subtotal is None:
        assert not issued.exists()
    else:
        assert issued.get().subtotal == case.update_invoice_subtotal
    assert subscription.status == case.status
    assert (subscription.current_period_start, subscription.current_period_end) == case.period
    if "upcoming_due" in case.extra:
        assert subscription.cancel_at is None
        assert upcoming_invoice(subscription=subscription, at=CHANGE_AT).amount_due == case.extra["upcoming_due"]
