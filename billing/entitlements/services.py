"""Writes: features, the features products grant, and the projection of what subscriptions grant.

`entitlements_refresh` is called by `billing.services.subscriptions.common.subscription_event`, which
every subscription service calls in the transaction of its change while it holds the subscription's
row lock: the projection rows of a subscription are written only under that lock, so two changes of
one customer's subscriptions never race on the same rows. The product-feature services lock the
subscriptions of the product (rank SUBSCRIPTION, ascending pk) before rewriting their rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from billing.entitlements.errors import EntitlementError
from billing.entitlements.models import MAX_FEATURE_QUANTITY, Feature, ProductFeature, SubscriptionEntitlement
from billing.entitlements.selectors import (
    GRANTING_STATUSES,
    customer_entitlements,
    entitlement_mismatches,
    subscription_grants,
)
from billing.locks import subscription_qs_for_update
from billing.models import Product, Subscription
from config import clock
from config.events.log import event_record
from config.modes import object_livemode
from config.types import ActingUser, JsonDict

FEATURE_FIELDS = ("lookup_key", "name", "kind", "unit_label", "active", "metadata")


def _summary(customer_id: int) -> list[dict[str, object]]:
    return [entitlement.as_json() for entitlement in customer_entitlements(customer_id=customer_id)]


def entitlements_refresh(
    *, subscription_ids: Iterable[int], at: datetime | None = None, acting_user: ActingUser = None
) -> set[int]:
    """Make the projection rows of these subscriptions equal to what they grant now.

    Records `entitlements.updated` for each customer whose entitlements changed, with the new
    list. Returns the ids of those customers. Cheap when nothing changed (two queries).
    """
    ids = sorted(set(subscription_ids))
    if not ids:
        return set()
    with transaction.atomic(savepoint=False):
        expected = subscription_grants(subscription_ids=ids)
        stored: dict[int, dict[int, int | None]] = {}
        for subscription_id, feature_id, quantity in SubscriptionEntitlement.objects.filter(
            subscription_id__in=ids
        ).values_list("subscription_id", "feature_id", "quantity"):
            stored.setdefault(subscription_id, {})[feature_id] = quantity
        changed = [pk for pk in ids if stored.get(pk, {}) != expected.get(pk, {})]
        if not changed:
            return set()
        owners = dict(Subscription.objects.filter(pk__in=changed).values_list("pk", "customer_id"))
        customers = sorted(set(owners.values()))
        before = {customer_id: _summary(customer_id) for customer_id in customers}
        SubscriptionEntitlement.objects.filter(subscription_id__in=changed).delete()
        SubscriptionEntitlement.objects.bulk_create(
            SubscriptionEntitlement(
                subscription_id=subscription_id,
                customer_id=owners[subscription_id],
                feature_id=feature_id,
                quantity=quantity,
            )
            for subscription_id in changed
            for feature_id, quantity in sorted(expected.get(subscription_id, {}).items())
        )
        updated = set()
        moment = at or clock.now()
        for customer_id in customers:
            after = _summary(customer_id)
            if after == before[customer_id]:
                continue
            updated.add(customer_id)
            event_record(
                type="entitlements.updated",
                object_type="customer",
                object_id=customer_id,
                customer_id=customer_id,
                occurred_at=moment,
                data={"customer": customer_id, "entitlements": after, "previous_entitlements": before[customer_id]},
                acting_user=acting_user,
            )
        return updated


def _product_subscriptions_refresh(*, product: Product, acting_user: ActingUser) -> None:
    """Lock the granting subscriptions that hold `product` and rewrite their projection rows."""
    holders = Subscription.objects.filter(items__price__product=product, status__in=GRANTING_STATUSES).values("pk")
    locked = list(subscription_qs_for_update().filter(pk__in=holders).values_list("pk", flat=True))
    # Subscriptions that no longer grant (canceled...) keep no rows, so only these can change.
    entitlements_refresh(subscription_ids=locked, acting_user=acting_user)


def _check_kind(kind: object) -> str:
    if kind not in Feature.Kind.values:
        raise EntitlementError(
            {"kind": _("Choose a kind: %(kinds)s.") % {"kinds": ", ".join(Feature.Kind.values)}}, code="invalid_kind"
        )
    return str(kind)


def feature_create(*, data: JsonDict, livemode: bool | None = None) -> Feature:
    """A new feature; its lookup key is unique within its mode."""
    unknown = set(data) - set(FEATURE_FIELDS)
    if unknown:
        raise EntitlementError(_("Unknown feature fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
    values = dict(data)
    values["kind"] = _check_kind(values.get("kind", Feature.Kind.BOOLEAN))
    feature = Feature(**values)
    if livemode is not None:
        feature.livemode = livemode
    feature.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic(savepoint=True):
        if Feature.objects.filter(livemode=feature.livemode, lookup_key=feature.lookup_key).exists():
            raise EntitlementError(
                {"lookup_key": _("A feature with the lookup key %(key)s exists.") % {"key": feature.lookup_key}},
                code="duplicate_lookup_key",
            )
        try:
            feature.save()
        except IntegrityError:
            raise EntitlementError(
                {"lookup_key": _("A feature with the lookup key %(key)s exists.") % {"key": feature.lookup_key}},
                code="duplicate_lookup_key",
            ) from None
    return feature


def feature_frozen_fields(*, feature: Feature) -> tuple[str, ...]:
    """A feature given to a product keeps its kind and lookup key (integrators' code checks them)."""
    if feature.pk and ProductFeature.objects.filter(feature=feature).exists():
        return ("lookup_key", "kind")
    return ()


def feature_update(*, feature: Feature, changes: JsonDict) -> Feature:
    unknown = set(changes) - set(FEATURE_FIELDS)
    if unknown:
        raise EntitlementError(_("Unknown feature fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
    frozen = [
        name
        for name in feature_frozen_fields(feature=feature)
        if name in changes and changes[name] != getattr(feature, name)
    ]
    if frozen:
        raise EntitlementError(
            {
                name: _("A feature given to products keeps its %(field)s: create a new feature instead.")
                % {"field": name}
                for name in frozen
            },
            code="feature_in_use",
        )
    with transaction.atomic(savepoint=True):
        for name, value in changes.items():
            setattr(feature, name, _check_kind(value) if name == "kind" else value)
        if "lookup_key" in changes and (
            Feature.objects.filter(livemode=feature.livemode, lookup_key=feature.lookup_key)
            .exclude(pk=feature.pk)
            .exists()
        ):
            raise EntitlementError(
                {"lookup_key": _("A feature with the lookup key %(key)s exists.") % {"key": feature.lookup_key}},
                code="duplicate_lookup_key",
            )
        feature.full_clean(validate_unique=False, validate_constraints=False)
        feature.save()
    return feature


def _check_grant(*, product: Product, feature: Feature, quantity: object, per_unit: bool) -> int | None:
    if object_livemode(product) != feature.livemode:
        raise EntitlementError({"feature": _("The feature and the product belong to different modes.")}, code="mode")
    if feature.kind == Feature.Kind.BOOLEAN:
        if quantity is not None or per_unit:
            raise EntitlementError({"quantity": _("An on/off feature takes no quantity.")}, code="quantity_not_allowed")
        return None
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= MAX_FEATURE_QUANTITY:
        raise EntitlementError(
            {
                "quantity": _("A quantity feature needs a whole quantity from 0 to %(maximum)s.")
                % {"maximum": f"{MAX_FEATURE_QUANTITY:,}"}
            },
            code="invalid_quantity",
        )
    return quantity


def product_feature_attach(
    *,
    product: Product,
    feature: Feature,
    quantity: int | None = None,
    per_unit: bool = False,
    acting_user: ActingUser = None,
) -> ProductFeature:
    """Give `feature` to every subscriber of `product`, now and from now on."""
    checked = _check_grant(product=product, feature=feature, quantity=quantity, per_unit=per_unit)
    if not feature.active:
        raise EntitlementError(
            {"feature": _("The feature %(name)s is archived.") % {"name": feature.name}}, code="archived_feature"
        )
    with transaction.atomic():
        if ProductFeature.objects.filter(product=product, feature=feature).exists():
            raise EntitlementError(
                {"feature": _("%(product)s already grants %(feature)s.") % {"product": product, "feature": feature}},
                code="duplicate_feature",
            )
        grant = ProductFeature.objects.create(product=product, feature=feature, quantity=checked, per_unit=per_unit)
        _product_subscriptions_refresh(product=product, acting_user=acting_user)
    return grant


def product_feature_update(
    *, grant: ProductFeature, quantity: int | None, per_unit: bool, acting_user: ActingUser = None
) -> ProductFeature:
    checked = _check_grant(product=grant.product, feature=grant.feature, quantity=quantity, per_unit=per_unit)
    with transaction.atomic():
        grant.quantity = checked
        grant.per_unit = per_unit
        grant.save(update_fields=["quantity", "per_unit"])
        _product_subscriptions_refresh(product=grant.product, acting_user=acting_user)
    return grant


def product_feature_detach(*, grant: ProductFeature, acting_user: ActingUser = None) -> None:
    """Take the feature away from the product's subscribers (their projection rows go at once)."""
    product = grant.product
    with transaction.atomic():
        grant.delete()
        _product_subscriptions_refresh(product=product, acting_user=acting_user)


def entitlements_rebuild(*, chunk: int = 2000, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Rewrite every subscription's projection from scratch (after a restore, or to repair a
    mismatch `verify_integrity` found). Returns the number of subscriptions whose rows changed.
    `on_progress(done, total)` follows the repair, chunk by chunk."""
    changed = [subscription_id for subscription_id, _stored, _expected in entitlement_mismatches(chunk=chunk)]
    for start in range(0, len(changed), chunk):
        if on_progress is not None:
            on_progress(start, len(changed))
        with transaction.atomic():
            ids = list(
                subscription_qs_for_update().filter(pk__in=changed[start : start + chunk]).values_list("pk", flat=True)
            )
            entitlements_refresh(subscription_ids=ids)
    if on_progress is not None:
        on_progress(len(changed), len(changed))
    return len(changed)
