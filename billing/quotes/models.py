"""Quotes (Stripe Quotes / Chargebee quotes): a priced offer a customer accepts online.

draft → open (finalized: numbered and frozen, then sent) → accepted | canceled | expired.
A revision is a new draft that `revises` an open (or expired) quote; finalizing it cancels
the quote it revises (cancel reason "superseded"). The allowed transitions live in
`TRANSITIONS` and are enforced by the services under the quote's row lock.
"""

from __future__ import annotations

import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def new_public_token() -> str:
    # 256 bits from the OS: the acceptance link is the customer's only credential.
    return secrets.token_urlsafe(32)


class QuoteSeries(models.Model):
    """A brand's own gapless quote number series (one row per brand, mode and scope such as the year)."""

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="quote_series", verbose_name=_("brand")
    )
    # "test:2026" for test-mode quotes: simulations never take a number of the real series.
    scope = models.CharField(_("scope"), max_length=20, blank=True)
    last_value = models.PositiveBigIntegerField(_("last number issued"), default=0)
    last_issued_at = models.DateTimeField(_("last issued"), null=True, blank=True)

    class Meta:
        verbose_name = _("quote number series")
        verbose_name_plural = _("quote number series")
        constraints = [models.UniqueConstraint(fields=["brand", "scope"], name="quote_series_unique")]

    def __str__(self) -> str:
        return f"{self.brand} {self.scope}: {self.last_value}"


class Quote(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        OPEN = "open", _("open")
        ACCEPTED = "accepted", _("accepted")
        CANCELED = "canceled", _("canceled")
        EXPIRED = "expired", _("expired")

    class CancelReason(models.TextChoices):
        REQUESTED = "requested", _("canceled by staff")
        SUPERSEDED = "superseded", _("replaced by a revision")

    class CollectionMethod(models.TextChoices):
        CHARGE_AUTOMATICALLY = "charge_automatically", _("charge automatically")
        SEND_INVOICE = "send_invoice", _("send invoice")

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="quotes", verbose_name=_("customer")
    )
    # The customer's brand when the quote was drafted: its series numbers the quote.
    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="quotes", verbose_name=_("brand")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(_("number"), max_length=60, blank=True)
    revises = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="revisions",
        verbose_name=_("revises"),
    )
    revision = models.PositiveIntegerField(_("revision"), default=1)
    public_token = models.CharField(max_length=64, unique=True, default=new_public_token, editable=False)
    currency = models.CharField(_("currency"), max_length=3)

    collection_method = models.CharField(
        _("collection method"), max_length=24, choices=CollectionMethod.choices, default=CollectionMethod.SEND_INVOICE
    )
    days_until_due = models.PositiveIntegerField(
        _("days until due"), null=True, blank=True, validators=[MaxValueValidator(365)]
    )
    trial_days = models.PositiveIntegerField(
        _("trial days"), default=0, validators=[MinValueValidator(0), MaxValueValidator(730)]
    )
    coupon = models.ForeignKey(
        "billing.Coupon", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("coupon")
    )
    valid_until = models.DateTimeField(_("valid until"))
    header = models.TextField(_("header"), blank=True)
    footer = models.TextField(_("footer"), blank=True)
    terms = models.TextField(_("terms"), blank=True)

    # Computed by the billing engine (subscription_preview_create); frozen at finalization.
    subtotal = models.BigIntegerField(_("subtotal"), default=0)
    discount_total = models.BigIntegerField(_("discounts"), default=0)
    tax_total = models.BigIntegerField(_("tax"), default=0)
    total = models.BigIntegerField(_("total of the first invoice"), default=0)
    recurring_total = models.BigIntegerField(_("recurring amount per cycle"), default=0)
    snapshot = models.JSONField(_("issued snapshot"), default=dict, blank=True)
    content_hash = models.CharField(_("content hash"), max_length=64, blank=True)

    finalized_at = models.DateTimeField(_("finalized"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    canceled_at = models.DateTimeField(_("canceled"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancel reason"), max_length=12, choices=CancelReason.choices, blank=True)
    expired_at = models.DateTimeField(_("expired"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)
    accepted_name = models.CharField(_("accepted by"), max_length=200, blank=True)
    accepted_ip = models.GenericIPAddressField(_("acceptance IP address"), null=True, blank=True)
    accepted_user_agent = models.CharField(_("acceptance user agent"), max_length=300, blank=True)
    subscription = models.OneToOneField(
        "billing.Subscription",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="quote",
        verbose_name=_("subscription"),
    )
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("first invoice"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("quote")
        verbose_name_plural = _("quotes")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["brand", "number"], condition=~Q(number=""), name="quote_number_unique_per_brand"
            ),
            # Accepted exactly once: an accepted quote names its subscription, and only then.
            models.CheckConstraint(
                condition=Q(status="accepted", subscription__isnull=False, accepted_at__isnull=False)
                | (~Q(status="accepted") & Q(subscription__isnull=True)),
                name="quote_accepted_has_subscription",
            ),
            models.CheckConstraint(condition=Q(status="draft") | ~Q(number=""), name="quote_issued_has_number"),
        ]
        indexes = [models.Index(fields=["status", "valid_until"])]

    def __str__(self) -> str:
        return self.number or _("Draft quote #%(pk)s") % {"pk": self.pk}


class QuoteLine(models.Model):
    """A catalog price × quantity, or a one-off amount (description + unit amount × quantity)."""

    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="lines", verbose_name=_("quote"))
    position = models.PositiveIntegerField(_("position"), default=0)
    price = models.ForeignKey(
        "billing.Price", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("price")
    )
    quantity = models.PositiveIntegerField(_("quantity"), default=1, validators=[MinValueValidator(1)])
    description = models.CharField(_("description"), max_length=200, blank=True)
    unit_amount = models.BigIntegerField(_("unit amount (minor units)"), null=True, blank=True)

    class Meta:
        verbose_name = _("quote line")
        verbose_name_plural = _("quote lines")
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__isnull=False, unit_amount__isnull=True)
                | Q(price__isnull=True, unit_amount__isnull=False),
                name="quote_line_price_or_amount",
            )
        ]

    def __str__(self) -> str:
        return self.description or str(self.price)

    @property
    def is_one_off(self) -> bool:
        return self.price_id is None
