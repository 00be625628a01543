"""Features, the products that grant them, and the per-subscription projection of what is granted."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.limits import MAX_QUANTITY
from config.modes import default_livemode

# A quantity limit (projects, GB, API keys...): whole units, bounded like every quantity.
MAX_FEATURE_QUANTITY = MAX_QUANTITY


class Feature(models.Model):
    """Something a customer may use: a boolean switch (SSO) or a quantity limit (10 projects)."""

    class Kind(models.TextChoices):
        BOOLEAN = "boolean", _("on/off")
        QUANTITY = "quantity", _("quantity limit")

    lookup_key = models.SlugField(
        _("lookup key"), max_length=80, help_text=_("What your code checks, e.g. sso or projects.")
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.BOOLEAN)
    unit_label = models.CharField(_("unit label"), max_length=40, blank=True, help_text=_("e.g. project, GB"))
    active = models.BooleanField(
        _("active"), default=True, help_text=_("An archived feature cannot be given to more products.")
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("feature")
        verbose_name_plural = _("features")
        ordering = ["lookup_key", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["livemode", "lookup_key"], name="feature_lookup_key_unique_per_mode")
        ]

    def __str__(self) -> str:
        return self.name


class ProductFeature(models.Model):
    """A product grants a feature; a quantity feature with its quantity (per unit of the item, or flat)."""

    product = models.ForeignKey(
        "billing.Product", on_delete=models.CASCADE, related_name="feature_grants", verbose_name=_("product")
    )
    feature = models.ForeignKey(
        Feature, on_delete=models.PROTECT, related_name="product_grants", verbose_name=_("feature")
    )
    quantity = models.PositiveBigIntegerField(
        _("quantity"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_FEATURE_QUANTITY)],
        help_text=_("For a quantity feature: how many units the product grants."),
    )
    per_unit = models.BooleanField(
        _("per unit subscribed"),
        default=False,
        help_text=_("Multiply the quantity by the subscription item's quantity (e.g. 5 GB per seat)."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("product feature")
        verbose_name_plural = _("product features")
        ordering = ["product_id", "feature__lookup_key", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["product", "feature"], name="product_feature_once"),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True, per_unit=False) | Q(quantity__isnull=False),
                name="product_feature_per_unit_needs_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} → {self.feature}"


class SubscriptionEntitlement(models.Model):
    """What one subscription grants now: a projection rewritten by the subscription services.

    Written only by `entitlements_refresh` (under the subscription's row lock, in the
    transaction of the change) and by the product-feature services. A customer's entitlements
    are the sum (quantity) or presence (boolean) of the rows of its subscriptions.
    """

    subscription = models.ForeignKey(
        "billing.Subscription", on_delete=models.CASCADE, related_name="entitlements", verbose_name=_("subscription")
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", verbose_name=_("customer")
    )
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="+", verbose_name=_("feature"))
    quantity = models.BigIntegerField(_("quantity"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("subscription entitlement")
        verbose_name_plural = _("subscription entitlements")
        constraints = [
            models.UniqueConstraint(fields=["subscription", "feature"], name="subscription_entitlement_once"),
        ]
        indexes = [models.Index(fields=["customer", "feature"], name="entitlement_customer_feature")]

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.feature_id}"
