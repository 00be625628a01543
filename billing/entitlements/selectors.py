"""Reads: a customer's entitlements (the fast path) and what they should be (the slow, independent path)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Sum

from billing.entitlements.models import Feature, ProductFeature, SubscriptionEntitlement
from billing.models import Subscription, SubscriptionItem
from customers.models import Customer

# Subscriptions in these statuses grant their products' features. Stripe keeps a customer's
# entitlements while the subscription is active or trialing, and while a payment is being retried
# (past_due); an unpaid, paused, incomplete or canceled subscription grants nothing.
GRANTING_STATUSES = frozenset({Subscription.Status.ACTIVE, Subscription.Status.TRIALING, Subscription.Status.PAST_DUE})


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One feature a customer has: `quantity` None for an on/off feature."""

    feature_id: int
    lookup_key: str
    name: str
    kind: str
    unit_label: str
    quantity: int | None

    def as_json(self) -> dict[str, object]:
        return {"feature": self.feature_id, "lookup_key": self.lookup_key, "quantity": self.quantity}


def customer_entitlements(*, customer_id: int) -> list[Entitlement]:
    """The customer's entitlements now: one indexed aggregate over the projection."""
    rows = (
        SubscriptionEntitlement.objects.filter(customer_id=customer_id)
        .values("feature_id", "feature__lookup_key", "feature__name", "feature__kind", "feature__unit_label")
        .annotate(total=Sum("quantity"))
        .order_by("feature__lookup_key")
    )
    return [
        Entitlement(
            feature_id=row["feature_id"],
            lookup_key=row["feature__lookup_key"],
            name=row["feature__name"],
            kind=row["feature__kind"],
            unit_label=row["feature__unit_label"],
            quantity=None if row["feature__kind"] == Feature.Kind.BOOLEAN else int(row["total"] or 0),
        )
        for row in rows
    ]


def _in_mode_sql() -> str:
    quote = connection.ops.quote_name
    customer, entitlement, feature = (
        Customer._meta.db_table,
        SubscriptionEntitlement._meta.db_table,
        Feature._meta.db_table,
    )
    return (
        f"SELECT f.{quote('id')}, f.{quote('lookup_key')}, f.{quote('name')}, f.{quote('kind')}, "
        f"f.{quote('unit_label')}, SUM(e.{quote('quantity')}) "
        f"FROM {quote(customer)} c "
        f"LEFT JOIN {quote(entitlement)} e ON e.{quote('customer_id')} = c.{quote('id')} "
        f"LEFT JOIN {quote(feature)} f ON f.{quote('id')} = e.{quote('feature_id')} "
        f"WHERE c.{quote('id')} = %s AND c.{quote('livemode')} = %s "
        f"GROUP BY f.{quote('id')}, f.{quote('lookup_key')}, f.{quote('name')}, f.{quote('kind')}, "
        f"f.{quote('unit_label')} ORDER BY f.{quote('lookup_key')}"
    )


def customer_entitlements_in_mode(*, customer_id: int, livemode: bool) -> list[Entitlement] | None:
    """The API's hot path (`GET /customers/{id}/entitlements`): the customer's entitlements if it
    exists in this mode, else None, in ONE round trip of pre-built SQL (no ORM compilation): the
    customer row (its mode, MODE_LOOKUPS' `livemode`) left-joined to the projection. Equal to
    `scope_to_mode` + `customer_entitlements` (tests/billing/entitlements); bench/entitlements.py
    measures it."""
    with connection.cursor() as cursor:
        cursor.execute(_in_mode_sql(), [customer_id, livemode])
        rows = cursor.fetchall()
    if not rows:
        return None
    boolean = Feature.Kind.BOOLEAN
    return [
        Entitlement(
            feature_id=feature_id,
            lookup_key=lookup_key,
            name=name,
            kind=kind,
            unit_label=unit_label,
            quantity=None if kind == boolean else int(total or 0),
        )
        for feature_id, lookup_key, name, kind, unit_label, total in rows
        if feature_id is not None  # a customer without entitlements: one row of NULLs
    ]


def subscription_grants(*, subscription_ids: Iterable[int]) -> dict[int, dict[int, int | None]]:
    """What each subscription should grant, computed from its status, items and the catalog.

    {subscription id: {feature id: quantity (None for on/off)}}; a subscription that grants
    nothing is absent. Quantities add up across items granting the same feature.
    """
    ids = list(subscription_ids)
    items = SubscriptionItem.objects.filter(subscription_id__in=ids, subscription__status__in=GRANTING_STATUSES)
    products: dict[int, list[tuple[int, int]]] = defaultdict(list)  # product -> [(subscription, quantity)]
    for subscription_id, product_id, quantity in items.values_list("subscription_id", "price__product_id", "quantity"):
        products[product_id].append((subscription_id, quantity))
    grants: dict[int, dict[int, int | None]] = defaultdict(dict)
    features = ProductFeature.objects.filter(product_id__in=list(products)).values_list(
        "product_id", "feature_id", "feature__kind", "quantity", "per_unit"
    )
    for product_id, feature_id, kind, granted, per_unit in features:
        for subscription_id, item_quantity in products[product_id]:
            current = grants[subscription_id]
            if kind == Feature.Kind.BOOLEAN:
                current[feature_id] = None
            else:
                amount = (granted or 0) * (item_quantity if per_unit else 1)
                current[feature_id] = (current.get(feature_id) or 0) + amount
    return dict(grants)


def customer_entitlements_expected(*, customer_id: int) -> dict[int, int | None]:
    """{feature id: quantity} the customer should have, derived from scratch (for checks and tests)."""
    ids = Subscription.objects.filter(customer_id=customer_id).values_list("pk", flat=True)
    total: dict[int, int | None] = {}
    for grants in subscription_grants(subscription_ids=ids).values():
        for feature_id, quantity in grants.items():
            total[feature_id] = None if quantity is None else (total.get(feature_id) or 0) + quantity
    return total


def entitlement_mismatches(*, chunk: int = 2000) -> Iterable[tuple[int, dict, dict]]:
    """Subscriptions whose projection differs from what they grant: (subscription id, stored, expected)."""
    candidates = set(SubscriptionEntitlement.objects.values_list("subscription_id", flat=True).distinct())
    candidates |= set(
        SubscriptionItem.objects.filter(
            subscription__status__in=GRANTING_STATUSES, price__product__feature_grants__isnull=False
        )
        .values_list("subscription_id", flat=True)
        .distinct()
    )
    ordered = sorted(candidates)
    for start in range(0, len(ordered), chunk):
        ids = ordered[start : start + chunk]
        expected = subscription_grants(subscription_ids=ids)
        stored: dict[int, dict[int, int | None]] = defaultdict(dict)
        for subscription_id, feature_id, quantity in SubscriptionEntitlement.objects.filter(
            subscription_id__in=ids
        ).values_list("subscription_id", "feature_id", "quantity"):
            stored[subscription_id][feature_id] = quantity
        for subscription_id in ids:
            if stored.get(subscription_id, {}) != expected.get(subscription_id, {}):
                yield subscription_id, stored.get(subscription_id, {}), expected.get(subscription_id, {})
