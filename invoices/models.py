"""Brands, number series, tax rates, invoices, credit notes and the customer balance ledger."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

from customers.models import Language, validate_currency_code

hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Use a colour like #2851a3."))


def validate_number_format(value: str) -> None:
    if "{seq" not in value:
        raise ValidationError(_("The number format must contain {seq}, e.g. INV-{year}-{seq:06d}."))
    try:
        value.format(seq=1, year=2026, month=1)
    except (KeyError, ValueError, IndexError) as error:
        raise ValidationError(_("Invalid number format: %(error)s"), params={"error": error}) from error


class Brand(models.Model):
    """A brand / legal entity that issues invoices under its own identity and number series."""

    class Layout(models.TextChoices):
        CLASSIC = "classic", _("classic")
        MODERN = "modern", _("modern")

    slug = models.SlugField(_("slug"), unique=True)
    name = models.CharField(_("trading name"), max_length=200)
    legal_name = models.CharField(_("legal name"), max_length=200)
    legal_form = models.CharField(_("legal form"), max_length=50, blank=True, help_text=_("e.g. SAS, SARL"))
    address_line1 = models.CharField(_("address"), max_length=200)
    address_line2 = models.CharField(_("address (continued)"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20)
    city = models.CharField(_("city"), max_length=100)
    country = CountryField(_("country"))
    siren = models.CharField(_("SIREN"), max_length=9, blank=True)
    siret = models.CharField(_("SIRET"), max_length=14, blank=True)
    vat_number = models.CharField(_("VAT number"), max_length=20, blank=True)
    share_capital = models.CharField(_("share capital"), max_length=50, blank=True)
    rcs = models.CharField(_("RCS registration"), max_length=100, blank=True, help_text=_("e.g. RCS Paris 123 456 789"))
    email = models.EmailField(_("billing contact email"), blank=True)
    website = models.URLField(_("website"), blank=True)
    timezone = models.CharField(_("time zone"), max_length=64, default="Europe/Paris")
    default_language = models.CharField(
        _("default language"), max_length=2, choices=Language.choices, default=Language.FR
    )
    primary_colour = models.CharField(_("primary colour"), max_length=7, default="#2851a3", validators=[hex_colour])
    accent_colour = models.CharField(_("accent colour"), max_length=7, default="#f0a202", validators=[hex_colour])
    layout = models.CharField(_("layout"), max_length=20, choices=Layout.choices, default=Layout.CLASSIC)
    footer_text = models.TextField(_("footer text"), blank=True)
    payment_instructions = models.TextField(_("payment instructions"), blank=True)
    iban = models.CharField(_("IBAN"), max_length=34, blank=True)
    bic = models.CharField(_("BIC"), max_length=11, blank=True)
    invoice_number_format = models.CharField(
        _("invoice number format"), max_length=50, default="F-{year}-{seq:06d}", validators=[validate_number_format]
    )
    credit_note_number_format = models.CharField(
        _("credit note number format"),
        max_length=50,
        default="AV-{year}-{seq:06d}",
        validators=[validate_number_format],
    )
    late_payment_rate = models.CharField(
        _("late-payment interest"),
        max_length=200,
        default="3 × le taux d'intérêt légal",
        help_text=_("Mentioned on invoices as French law requires."),
    )
    vat_on_debits = models.BooleanField(_("VAT on debits (option pour les débits)"), default=False)
    is_default = models.BooleanField(_("default brand"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("brand")
        verbose_name_plural = _("brands")
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_brand"),
        ]

    def __str__(self) -> str:
        return self.name


class NumberSequence(models.Model):
    """A gapless counter for one series (brand × document kind × scope such as the year)."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("invoice")
        CREDIT_NOTE = "credit_note", _("credit note")

    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="sequences", verbose_name=_("brand"))
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    scope = models.CharField(_("scope"), max_length=20, blank=True, help_text=_("e.g. the year for yearly series"))
    last_value = models.PositiveBigIntegerField(_("last number issued"), default=0)

    class Meta:
        verbose_name = _("number sequence")
        verbose_name_plural = _("number sequences")
        constraints = [models.UniqueConstraint(fields=["brand", "kind", "scope"], name="number_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.brand} {self.kind} {self.scope}: {self.last_value}"


class TaxRate(models.Model):
    """A VAT (or sales tax) rate for a country; the standard one is used for OSS and domestic sales."""

    country = CountryField(_("country"))
    name = models.CharField(_("name"), max_length=100, default="TVA")
    percentage = models.DecimalField(
        _("percentage"),
        max_digits=6,
        decimal_places=3,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    is_standard = models.BooleanField(_("standard rate"), default=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("tax rate")
        verbose_name_plural = _("tax rates")
        constraints = [
            models.UniqueConstraint(
                fields=["country"], condition=Q(is_standard=True, active=True), name="one_standard_rate_per_country"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.country} {self.percentage}%"


# Columns of an invoice that are frozen once it leaves draft. The same list feeds the
# PostgreSQL trigger (see the migration) and the model-layer check.
FROZEN_INVOICE_FIELDS = (
    "number",
    "customer_id",
    "brand_id",
    "currency",
    "subtotal",
    "discount_total",
    "tax_total",
    "total",
    "total_excluding_tax",
    "starting_balance_applied",
    "amount_due",
    "period_start",
    "period_end",
    "issued_snapshot",
    "tax_breakdown",
    "finalized_at",
    "subscription_id",
    "billing_reason",
)


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        OPEN = "open", _("open")
        PAID = "paid", _("paid")
        VOID = "void", _("void")
        UNCOLLECTIBLE = "uncollectible", _("uncollectible")

    class BillingReason(models.TextChoices):
        SUBSCRIPTION_CREATE = "subscription_create", _("subscription created")
        SUBSCRIPTION_CYCLE = "subscription_cycle", _("subscription renewal")
        SUBSCRIPTION_UPDATE = "subscription_update", _("subscription change")
        MANUAL = "manual", _("manual")

    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="invoices", verbose_name=_("brand"))
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="invoices", verbose_name=_("customer")
    )
    subscription = models.ForeignKey(
        "billing.Subscription",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        verbose_name=_("subscription"),
    )
    number = models.CharField(_("number"), max_length=50, null=True, blank=True, unique=True)
    status = models.CharField(_("status"), max_length=14, choices=Status.choices, default=Status.DRAFT)
    billing_reason = models.CharField(
        _("billing reason"), max_length=24, choices=BillingReason.choices, default=BillingReason.MANUAL
    )
    collection_method = models.CharField(_("collection method"), max_length=24, default="charge_automatically")
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency_code])
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.FR)
    period_start = models.DateTimeField(_("period start"), null=True, blank=True)
    period_end = models.DateTimeField(_("period end"), null=True, blank=True)
    subtotal = models.BigIntegerField(_("subtotal"), default=0)
    discount_total = models.BigIntegerField(_("discounts"), default=0)
    tax_total = models.BigIntegerField(_("tax"), default=0)
    total_excluding_tax = models.BigIntegerField(_("total excluding tax"), default=0)
    total = models.BigIntegerField(_("total"), default=0)
    starting_balance_applied = models.BigIntegerField(
        _("customer credit applied"), default=0, help_text=_("Credit from the customer balance used on this invoice.")
    )
    amount_due = models.BigIntegerField(_("amount due"), default=0)
    amount_paid = models.BigIntegerField(_("amount paid"), default=0)
    amount_remaining = models.BigIntegerField(_("amount remaining"), default=0)
    tax_breakdown = models.JSONField(_("tax breakdown"), default=list, blank=True)
    issued_snapshot = models.JSONField(
        _("issued details"),
        default=dict,
        blank=True,
        help_text=_("Seller, buyer and plan details frozen at finalization."),
    )
    memo = models.TextField(_("memo"), blank=True)
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    finalized_at = models.DateTimeField(_("finalized"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    voided_at = models.DateTimeField(_("voided"), null=True, blank=True)
    content_hash = models.CharField(_("content hash"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["finalized_at"]),
        ]
        constraints = [
            # Exactly once per subscription-period: the database refuses a second renewal invoice.
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(billing_reason="subscription_cycle") & ~Q(status="void"),
                name="invoice_one_renewal_per_period",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False), name="invoice_finalized_has_number"
            ),
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="invoice_amount_paid_not_negative"),
        ]

    def __str__(self) -> str:
        return self.number or _("Draft invoice #%(pk)s") % {"pk": self.pk}

    @property
    def is_frozen(self) -> bool:
        return self.status != self.Status.DRAFT


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        SUBSCRIPTION = "subscription", _("subscription")
        USAGE = "usage", _("usage")
        PRORATION = "proration", _("proration")
        ONE_OFF = "one_off", _("one-off")

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines", verbose_name=_("invoice"))
    position = models.PositiveIntegerField(_("position"), default=0)
    kind = models.CharField(_("kind"), max_length=14, choices=Kind.choices)
    description = models.CharField(_("description"), max_length=300)
    price = models.ForeignKey(
        "billing.Price",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoice_lines",
        verbose_name=_("price"),
    )
    quantity = models.DecimalField(_("quantity"), max_digits=20, decimal_places=6, default=Decimal(1))
    unit_amount = models.DecimalField(
        _("unit amount (minor units)"), max_digits=20, decimal_places=6, null=True, blank=True
    )
    amount = models.BigIntegerField(_("amount"))
    discount_amount = models.BigIntegerField(_("discount"), default=0)
    tax_rate = models.DecimalField(_("tax rate (%)"), max_digits=6, decimal_places=3, default=Decimal(0))
    tax_category = models.CharField(_("tax category"), max_length=3, default="S")
    tax_inclusive = models.BooleanField(_("tax inclusive"), default=False)
    tax_amount = models.BigIntegerField(_("tax"), default=0)
    period_start = models.DateTimeField(_("period start"), null=True, blank=True)
    period_end = models.DateTimeField(_("period end"), null=True, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice", "position", "pk"]

    def __str__(self) -> str:
        return self.description


class CreditNote(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", _("issued")
        VOID = "void", _("void")

    class Reason(models.TextChoices):
        DUPLICATE = "duplicate", _("duplicate")
        FRAUDULENT = "fraudulent", _("fraudulent")
        ORDER_CHANGE = "order_change", _("order change")
        PRODUCT_UNSATISFACTORY = "product_unsatisfactory", _("product unsatisfactory")
        OTHER = "other", _("other")

    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="credit_notes", verbose_name=_("invoice")
    )
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="credit_notes", verbose_name=_("brand"))
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="credit_notes", verbose_name=_("customer")
    )
    number = models.CharField(_("number"), max_length=50, unique=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ISSUED)
    reason = models.CharField(_("reason"), max_length=24, choices=Reason.choices, default=Reason.OTHER)
    memo = models.TextField(_("memo"), blank=True)
    currency = models.CharField(_("currency"), max_length=3)
    subtotal = models.BigIntegerField(_("subtotal"))
    tax_total = models.BigIntegerField(_("tax"))
    total = models.BigIntegerField(_("total"))
    reduced_amount_due = models.BigIntegerField(_("reduces amount due by"), default=0)
    credited_to_balance = models.BigIntegerField(_("credited to customer balance"), default=0)
    refunded = models.BigIntegerField(_("to refund"), default=0)
    tax_breakdown = models.JSONField(_("tax breakdown"), default=list, blank=True)
    issued_snapshot = models.JSONField(_("issued details"), default=dict, blank=True)
    issued_at = models.DateTimeField(_("issued"))
    content_hash = models.CharField(_("content hash"), max_length=64, blank=True)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("issued by")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("credit note")
        verbose_name_plural = _("credit notes")
        ordering = ["-issued_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    total=models.F("reduced_amount_due") + models.F("credited_to_balance") + models.F("refunded")
                ),
                name="credit_note_allocation_sums_to_total",
            ),
            models.CheckConstraint(condition=Q(total__gt=0), name="credit_note_positive_total"),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.CASCADE, related_name="lines", verbose_name=_("credit note")
    )
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("invoice line")
    )
    description = models.CharField(_("description"), max_length=300)
    quantity = models.DecimalField(_("quantity"), max_digits=20, decimal_places=6, default=Decimal(1))
    amount = models.BigIntegerField(_("amount excluding tax"))
    tax_rate = models.DecimalField(_("tax rate (%)"), max_digits=6, decimal_places=3, default=Decimal(0))
    tax_category = models.CharField(_("tax category"), max_length=3, default="S")
    tax_amount = models.BigIntegerField(_("tax"), default=0)

    class Meta:
        verbose_name = _("credit note line")
        verbose_name_plural = _("credit note lines")

    def __str__(self) -> str:
        return self.description


class BalanceTransaction(models.Model):
    """The customer balance ledger. Positive = credit the customer holds; negative = credit used.

    The balance is the sum of a customer's rows in one currency; it reconciles with
    invoices and credit notes (see `manage.py verify_integrity`).
    """

    class Kind(models.TextChoices):
        ADJUSTMENT = "adjustment", _("manual adjustment")
        CREDIT_NOTE = "credit_note", _("credit note")
        APPLIED_TO_INVOICE = "applied_to_invoice", _("applied to invoice")
        PRORATION_CREDIT = "proration_credit", _("unused time credit")
        OVERPAYMENT = "overpayment", _("overpayment")
        INVOICE_VOIDED = "invoice_voided", _("returned from voided invoice")

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="balance_transactions", verbose_name=_("customer")
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = models.BigIntegerField(_("amount"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    description = models.CharField(_("description"), max_length=300, blank=True)
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="balance_transactions",
        verbose_name=_("invoice"),
    )
    credit_note = models.ForeignKey(
        CreditNote,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="balance_transactions",
        verbose_name=_("credit note"),
    )
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("balance transaction")
        verbose_name_plural = _("balance transactions")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["customer", "currency"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency}"
