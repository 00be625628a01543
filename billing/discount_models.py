"""Discounts held by a subscription or a customer (issue 16, item 6: several discounts).

Imported from billing/models.py so Django registers them in the billing app. A discount is
one redemption of a coupon (optionally through a promotion code): it keeps its own count
of billed periods and, for a carry-over coupon, what is left of its amount. The rules live
in billing/services/coupons.py; docs/billing.md "Several discounts" describes them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class DiscountBase(models.Model):
    coupon = models.ForeignKey("billing.Coupon", on_delete=models.PROTECT, related_name="+", verbose_name=_("coupon"))
    promotion_code = models.ForeignKey(
        "billing.PromotionCode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("promotion code"),
    )
    # Billed periods (invoices) that used this discount, counted when such an invoice is finalized.
    periods_applied = models.PositiveIntegerField(_("discounted periods so far"), default=0)
    # A carry-over coupon's amount not used yet (minor units, the coupon's currency); null otherwise.
    carry_over_remaining = models.BigIntegerField(_("amount left to carry over"), null=True, blank=True)
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("removed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return str(self.coupon)

    @property
    def active(self) -> bool:
        return self.end is None


class SubscriptionDiscount(DiscountBase):
    """One discount of a subscription's ordered list (`position`: lower applies first)."""

    subscription = models.ForeignKey(
        "billing.Subscription", on_delete=models.CASCADE, related_name="discounts", verbose_name=_("subscription")
    )
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("subscription discount")
        verbose_name_plural = _("subscription discounts")
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(carry_over_remaining__isnull=True) | Q(carry_over_remaining__gte=0),
                name="subscription_discount_carry_over_not_negative",
            ),
        ]


class CustomerDiscount(DiscountBase):
    """A discount of a customer: applies to the invoices of its subscriptions that have none of their own."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="discounts", verbose_name=_("customer")
    )

    class Meta:
        verbose_name = _("customer discount")
        verbose_name_plural = _("customer discounts")
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(carry_over_remaining__isnull=True) | Q(carry_over_remaining__gte=0),
                name="customer_discount_carry_over_not_negative",
            ),
            # One running discount per customer (Stripe's customer.discount).
            models.UniqueConstraint(
                fields=["customer"], condition=Q(end__isnull=True), name="customer_discount_one_active"
            ),
        ]
