"""Pricing tables and payment links: brand- and mode-bound entry points to a checkout session.

Their public ids (`prctbl_…`, `plink_…`) are random, not the primary key: they appear in
public URLs, and a sequential id would let anyone walk every table and link of every brand.
"""

from __future__ import annotations

import secrets
import string

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.limits import MAX_QUANTITY
from config.modes import default_livemode

PUBLIC_ID_ALPHABET = string.ascii_letters + string.digits
PUBLIC_ID_LENGTH = 24  # 62^24 ≈ 2^143: not guessable
MAX_TRIAL_DAYS = 730
MAX_TABLE_ENTRIES = 4
MAX_LINK_ITEMS = 3


def new_public_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))


def new_pricing_table_id() -> str:
    return new_public_id("prctbl")


def new_payment_link_id() -> str:
    return new_public_id("plink")


class PricingTable(models.Model):
    """Products side by side with a monthly/yearly toggle and a button to a checkout."""

    public_id = models.CharField(
        _("public id"), max_length=40, unique=True, default=new_pricing_table_id, editable=False
    )
    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="pricing_tables", verbose_name=_("brand")
    )
    name = models.CharField(_("name"), max_length=200, help_text=_("For you; visitors see the products."))
    button_label = models.CharField(
        _("button label"),
        max_length=40,
        blank=True,
        help_text=_('Empty: "Start trial" when there is a trial, else "Subscribe".'),
    )
    trial_period_days = models.PositiveIntegerField(
        _("trial days"), null=True, blank=True, validators=[MaxValueValidator(MAX_TRIAL_DAYS)]
    )
    allow_promotion_codes = models.BooleanField(_("allow promotion codes"), default=False)
    success_url = models.URLField(
        _("success URL"), blank=True, help_text=_("Where the customer goes after paying (empty: a thank-you page).")
    )
    cancel_url = models.URLField(
        _("cancel URL"), blank=True, help_text=_("Where the back link of the checkout leads (empty: this table).")
    )
    embed_origins = models.TextField(
        _("sites allowed to embed"),
        blank=True,
        help_text=_("One origin per line (https://www.example.com) that may show this table in an iframe."),
    )
    active = models.BooleanField(_("active"), default=True)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("pricing table")
        verbose_name_plural = _("pricing tables")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name

    def embed_origin_list(self) -> list[str]:
        return [line.strip().rstrip("/") for line in self.embed_origins.splitlines() if line.strip()]


class PricingTableEntry(models.Model):
    """One product of a table: its monthly and/or yearly price, written only by the table's services."""

    table = models.ForeignKey(
        PricingTable, on_delete=models.CASCADE, related_name="entries", verbose_name=_("pricing table")
    )
    position = models.PositiveSmallIntegerField(_("position"))
    product = models.ForeignKey(
        "billing.Product", on_delete=models.PROTECT, related_name="+", verbose_name=_("product")
    )
    monthly_price = models.ForeignKey(
        "billing.Price",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("monthly price"),
    )
    yearly_price = models.ForeignKey(
        "billing.Price",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("yearly price"),
    )
    features = models.JSONField(
        _("features"),
        default=list,
        blank=True,
        help_text=_("Shown when the product grants no entitlement features."),
    )
    highlighted = models.BooleanField(_("highlighted"), default=False)

    class Meta:
        verbose_name = _("pricing table entry")
        verbose_name_plural = _("pricing table entries")
        ordering = ["table_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["table", "position"], name="pricing_table_entry_position_once"),
            models.UniqueConstraint(
                fields=["table"], condition=Q(highlighted=True), name="pricing_table_one_highlighted_entry"
            ),
            models.CheckConstraint(
                condition=Q(monthly_price__isnull=False) | Q(yearly_price__isnull=False),
                name="pricing_table_entry_has_a_price",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.table_id} #{self.position}: {self.product_id}"


class PaymentLink(models.Model):
    """A shareable URL to a checkout for fixed prices."""

    class Mode(models.TextChoices):
        SUBSCRIPTION = "subscription", _("subscription")
        PAYMENT = "payment", _("one-time payment")

    public_id = models.CharField(
        _("public id"), max_length=40, unique=True, default=new_payment_link_id, editable=False
    )
    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.PROTECT, related_name="payment_links", verbose_name=_("brand")
    )
    name = models.CharField(_("name"), max_length=200, help_text=_("For you; buyers see the products."))
    mode = models.CharField(_("mode"), max_length=12, choices=Mode.choices, default=Mode.SUBSCRIPTION)
    trial_period_days = models.PositiveIntegerField(
        _("trial days"), null=True, blank=True, validators=[MaxValueValidator(MAX_TRIAL_DAYS)]
    )
    allow_promotion_codes = models.BooleanField(_("allow promotion codes"), default=False)
    after_completion_url = models.URLField(
        _("redirect after completion"), blank=True, help_text=_("Empty: a thank-you page.")
    )
    active = models.BooleanField(_("active"), default=True)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("payment link")
        verbose_name_plural = _("payment links")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name


class PaymentLinkItem(models.Model):
    """A price and quantity a link sells; written only by the link's services."""

    link = models.ForeignKey(
        PaymentLink, on_delete=models.CASCADE, related_name="items", verbose_name=_("payment link")
    )
    position = models.PositiveSmallIntegerField(_("position"))
    price = models.ForeignKey("billing.Price", on_delete=models.PROTECT, related_name="+", verbose_name=_("price"))
    quantity = models.PositiveIntegerField(
        _("quantity"), default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)]
    )
    adjustable_minimum = models.PositiveIntegerField(
        _("minimum quantity"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)],
        help_text=_("With a maximum: the buyer chooses the quantity between the two."),
    )
    adjustable_maximum = models.PositiveIntegerField(
        _("maximum quantity"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)]
    )

    class Meta:
        verbose_name = _("payment link item")
        verbose_name_plural = _("payment link items")
        ordering = ["link_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["link", "position"], name="payment_link_item_position_once"),
            models.CheckConstraint(
                condition=Q(adjustable_minimum__isnull=True, adjustable_maximum__isnull=True)
                | Q(
                    adjustable_minimum__isnull=False,
                    adjustable_maximum__isnull=False,
                    adjustable_minimum__lte=models.F("adjustable_maximum"),
                    quantity__gte=models.F("adjustable_minimum"),
                    quantity__lte=models.F("adjustable_maximum"),
                ),
                name="payment_link_item_quantity_bounds",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.link_id} #{self.position}: {self.price_id} × {self.quantity}"

    @property
    def adjustable(self) -> bool:
        return self.adjustable_minimum is not None and self.adjustable_maximum is not None
