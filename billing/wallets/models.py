"""Prepaid credits (issue 16, item 7): a customer's wallet per currency, its credit grants and their ledger.

Stripe calls them credit grants (`billing.credit_grant`), Lago wallets and wallet
transactions. Here:

- `Wallet`: one per (customer, currency): the low-balance threshold and the automatic
  top-up rule live on it. Its balance is the sum of its grants' `remaining`, which is the
  sum of its ledger (`WalletTransaction`).
- `CreditGrant`: an amount of credit, `paid` (bought: a purchase invoice, available once that
  invoice is paid) or `promotional` (free, available at once), with a validity window
  (`effective_at`, `expires_at`), a priority and an eligibility (which invoice lines it may pay).
- `WalletTransaction`: every movement of a grant, signed: +grant, -consumption (an invoice),
  -expiry, -void, +reversal (an invoice that consumed credits was voided).

The database refuses a grant whose `remaining` leaves [0, amount], so neither a grant nor a
wallet can go negative, whatever path wrote it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.limits import MAX_AMOUNT


class Wallet(models.Model):
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="wallets", verbose_name=_("customer")
    )
    currency = models.CharField(_("currency"), max_length=3)
    # The balance under which `customer.wallet.balance_low` is recorded (once per crossing); None: never.
    low_balance_threshold = models.BigIntegerField(_("low balance threshold"), null=True, blank=True)
    # Automatic top-up: when the balance falls under `top_up_threshold`, buy `top_up_amount` of paid
    # credits through the customer's default payment method (once per crossing: `top_up_armed`).
    top_up_threshold = models.BigIntegerField(_("automatic top-up threshold"), null=True, blank=True)
    top_up_amount = models.BigIntegerField(_("automatic top-up amount"), null=True, blank=True)
    top_up_armed = models.BooleanField(_("automatic top-up armed"), default=True)
    low_balance_armed = models.BooleanField(_("low balance alert armed"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("wallet")
        verbose_name_plural = _("wallets")
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency"], name="wallet_one_per_customer_currency"),
            models.CheckConstraint(
                condition=Q(top_up_amount__isnull=True) | Q(top_up_amount__gt=0, top_up_amount__lte=MAX_AMOUNT),
                name="wallet_top_up_amount_bounds",
            ),
            models.CheckConstraint(
                condition=Q(top_up_threshold__isnull=True) | Q(top_up_threshold__gte=0),
                name="wallet_top_up_threshold_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(low_balance_threshold__isnull=True) | Q(low_balance_threshold__gte=0),
                name="wallet_low_balance_threshold_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.currency}"


class CreditGrant(models.Model):
    class Category(models.TextChoices):
        PAID = "paid", _("paid")
        PROMOTIONAL = "promotional", _("promotional")

    class Status(models.TextChoices):
        PENDING = "pending", _("awaiting payment")  # paid credits whose purchase invoice is not paid yet
        ACTIVE = "active", _("active")
        EXPIRED = "expired", _("expired")
        VOIDED = "voided", _("voided")

    class AppliesTo(models.TextChoices):
        ALL = "all", _("every line")
        USAGE = "usage", _("usage (metered) lines")
        PRICES = "prices", _("chosen prices or products")

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="grants", verbose_name=_("wallet"))
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="credit_grants", verbose_name=_("customer")
    )
    currency = models.CharField(_("currency"), max_length=3)
    name = models.CharField(_("name"), max_length=100, blank=True)
    category = models.CharField(_("category"), max_length=12, choices=Category.choices)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices)
    amount = models.BigIntegerField(_("amount"))
    remaining = models.BigIntegerField(_("remaining"), default=0)
    priority = models.PositiveSmallIntegerField(_("priority"), default=50)
    effective_at = models.DateTimeField(_("effective from"))
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    applies_to = models.CharField(_("applies to"), max_length=8, choices=AppliesTo.choices, default=AppliesTo.ALL)
    price_ids = models.JSONField(_("prices"), default=list, blank=True)
    product_ids = models.JSONField(_("products"), default=list, blank=True)
    purchase_invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_grants_bought",
        verbose_name=_("purchase invoice"),
    )
    automatic_top_up = models.BooleanField(_("automatic top-up"), default=False)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    voided_at = models.DateTimeField(_("voided"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("credit grant")
        verbose_name_plural = _("credit grants")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["customer", "currency", "status"], name="grant_customer_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0, amount__lte=MAX_AMOUNT), name="credit_grant_amount_bounds"
            ),
            models.CheckConstraint(
                condition=Q(remaining__gte=0, remaining__lte=models.F("amount")),
                name="credit_grant_remaining_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("effective_at")),
                name="credit_grant_expires_after_effective",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_category_display()} #{self.pk}"


class WalletTransaction(models.Model):
    """One movement of one grant; a grant's `remaining` is the sum of its rows."""

    class Kind(models.TextChoices):
        GRANT = "grant", _("credits granted")
        CONSUMPTION = "consumption", _("applied to an invoice")
        EXPIRY = "expiry", _("expired")
        VOID = "void", _("voided")
        REVERSAL = "reversal", _("returned from a voided invoice")

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transactions", verbose_name=_("wallet"))
    grant = models.ForeignKey(
        CreditGrant, on_delete=models.PROTECT, related_name="transactions", verbose_name=_("credit grant")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    amount = models.BigIntegerField(_("amount"))
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="wallet_transactions",
        verbose_name=_("invoice"),
    )
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("wallet transaction")
        verbose_name_plural = _("wallet transactions")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="wallet_transaction_not_zero"),
            # An invoice consumes a grant once (exactly once under retries) and is reversed once.
            models.UniqueConstraint(
                fields=["grant", "invoice", "kind"],
                condition=Q(kind__in=["consumption", "reversal"]),
                name="wallet_transaction_once_per_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount}"
