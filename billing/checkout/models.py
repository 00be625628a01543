"""A checkout session and its line items (Stripe's Checkout Session, hosted by Tarif)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.limits import MAX_QUANTITY
from config.modes import default_livemode


def new_public_id(*, livemode: bool) -> str:
    """`cs_live_…` / `cs_test_…` with 128 random bits: the id is the capability to use the page."""
    return f"cs_{'live' if livemode else 'test'}_{secrets.token_hex(16)}"


class CheckoutSession(models.Model):
    class Mode(models.TextChoices):
        SUBSCRIPTION = "subscription", _("subscription")
        PAYMENT = "payment", _("one-time payment")
        SETUP = "setup", _("save a payment method")

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        COMPLETE = "complete", _("complete")
        EXPIRED = "expired", _("expired")

    class AddressCollection(models.TextChoices):
        AUTO = "auto", _("when needed")
        REQUIRED = "required", _("always")

    class PaymentMethodType(models.TextChoices):
        CARD = "card", _("card")
        SEPA_DEBIT = "sepa_debit", _("SEPA Direct Debit")
        BANK_TRANSFER = "bank_transfer", _("bank transfer")

    class Origin(models.TextChoices):
        API = "api", _("API")
        PAYMENT_LINK = "payment_link", _("payment link")
        PRICING_TABLE = "pricing_table", _("pricing table")
        PORTAL = "portal", _("portal")
        CONSOLE = "console", _("console")

    public_id = models.CharField(_("id"), max_length=64, unique=True, editable=False)
    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="checkout_sessions", verbose_name=_("brand")
    )
    livemode = models.BooleanField(_("live mode"), default=default_livemode, editable=False, db_index=True)
    mode = models.CharField(_("mode"), max_length=12, choices=Mode.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    currency = models.CharField(_("currency"), max_length=3)
    trial_period_days = models.PositiveIntegerField(_("trial days"), null=True, blank=True)
    coupon = models.ForeignKey(
        "billing.Coupon", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("coupon")
    )
    allow_promotion_codes = models.BooleanField(_("allow promotion codes"), default=False)
    promotion_code = models.ForeignKey(
        "billing.PromotionCode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("promotion code entered"),
    )
    success_url = models.URLField(_("success URL"), max_length=2000)
    cancel_url = models.URLField(_("cancel URL"), max_length=2000)
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="checkout_sessions",
        verbose_name=_("customer"),
    )
    customer_email = models.EmailField(_("customer email"), blank=True)
    tax_id_collection = models.BooleanField(_("collect tax ID"), default=True)
    billing_address_collection = models.CharField(
        _("billing address"), max_length=10, choices=AddressCollection.choices, default=AddressCollection.AUTO
    )
    origin = models.CharField(_("origin"), max_length=20, choices=Origin.choices, default=Origin.API)
    origin_id = models.CharField(_("origin id"), max_length=64, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    # What the buyer typed on the page (name, email, country, address, VAT number, business or not).
    details = models.JSONField(_("buyer details"), default=dict, blank=True)
    # What the page offers (Stripe's `payment_method_types`) and what the buyer chose. A card or a
    # SEPA mandate becomes the customer's default payment method; a bank transfer makes the
    # subscription (or invoice) "send invoice" with the brand's bank details (docs/checkout.md).
    payment_method_types = models.JSONField(_("payment methods offered"), default=list, blank=True)
    payment_method_type = models.CharField(
        _("payment method chosen"), max_length=16, choices=PaymentMethodType.choices, blank=True
    )
    # The gateway's hosted card page opened for this session, and the charge made before completion.
    gateway = models.CharField(_("gateway"), max_length=20, blank=True)
    gateway_session_id = models.CharField(_("gateway session"), max_length=100, blank=True)
    charge_reference = models.CharField(_("charge reference"), max_length=100, blank=True)
    amount_subtotal = models.BigIntegerField(_("subtotal"), null=True, blank=True)
    amount_tax = models.BigIntegerField(_("tax"), null=True, blank=True)
    amount_total = models.BigIntegerField(_("total"), null=True, blank=True)
    decline_message = models.CharField(_("last decline"), max_length=300, blank=True)
    expires_at = models.DateTimeField(_("expires"))
    processing_started_at = models.DateTimeField(_("payment started"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    subscription = models.ForeignKey(
        "billing.Subscription",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("subscription"),
    )
    invoice = models.ForeignKey(
        "invoices.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("invoice")
    )
    payment_method = models.ForeignKey(
        "billing.PaymentMethod",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("payment method"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("checkout session")
        verbose_name_plural = _("checkout sessions")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "expires_at"], name="checkout_open_expiry")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="complete", completed_at__isnull=False) | ~Q(status="complete"),
                name="checkout_complete_has_date",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class CheckoutSessionLineItem(models.Model):
    session = models.ForeignKey(
        CheckoutSession, on_delete=models.CASCADE, related_name="line_items", verbose_name=_("checkout session")
    )
    price = models.ForeignKey("billing.Price", on_delete=models.PROTECT, related_name="+", verbose_name=_("price"))
    quantity = models.PositiveIntegerField(
        _("quantity"), default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)]
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("line item")
        verbose_name_plural = _("line items")
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.price} × {self.quantity}"
