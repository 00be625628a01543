"""Brands, number series, tax rates, invoices, credit notes and the customer balance ledger."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

from config.formatting import format_money
from customers.models import Language, validate_currency_code
from invoices.errors import FrozenInvoiceError
from invoices.rendering.fonts import DEFAULT_FONT, FONT_CHOICES
from invoices.rendering.logos import validate_logo

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

    class OperationCategory(models.TextChoices):
        # Mention required by the 2026-2027 e-invoicing reform (goods, services, or both).
        SERVICES = "services", _("supply of services")
        GOODS = "goods", _("supply of goods")
        MIXED = "mixed", _("goods and services")

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
    font = models.CharField(_("font"), max_length=30, choices=FONT_CHOICES, default=DEFAULT_FONT)
    logo = models.FileField(
        _("logo"),
        upload_to="brands/logos/",
        blank=True,
        validators=[validate_logo],
        help_text=_("PNG, JPEG or SVG (no scripts), at most 1 MB and 4000 pixels per side."),
    )
    operation_category = models.CharField(
        _("category of the operations"),
        max_length=10,
        choices=OperationCategory.choices,
        default=OperationCategory.SERVICES,
        help_text=_("Printed on invoices: goods, services, or both."),
    )
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
    # Issue 16 item 11 (tax codes): the code of lines whose price and product name none.
    default_tax_code = models.ForeignKey(
        "invoices.TaxCode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("default tax code"),
        help_text=_("For products without a tax code; empty: the standard rate."),
    )

    class Meta:
        verbose_name = _("brand")
        verbose_name_plural = _("brands")
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_brand"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        # Invoice and credit-note numbers are unique across brands (a number identifies one
        # document, e.g. as a bank-transfer reference), so two brands cannot share a format.
        for field in ("invoice_number_format", "credit_note_number_format"):
            value = getattr(self, field)
            other = Brand.objects.exclude(pk=self.pk).filter(**{field: value}).first() if value else None
            if other is not None:
                raise ValidationError(
                    {
                        field: _(
                            "The brand %(other)s already uses this format; give each brand its own prefix "
                            "(e.g. %(example)s) so their numbers never collide."
                        )
                        % {"other": other.name, "example": f"{self.slug.upper()[:3]}-{{year}}-{{seq:06d}}"}
                    }
                )


class InvoiceCustomField(models.Model):
    """A label and value printed on invoices: of a brand (all its invoices) or of a customer.

    Frozen into `issued_snapshot` at finalization: editing one never changes an issued invoice.
    """

    brand = models.ForeignKey(
        Brand,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="custom_fields",
        verbose_name=_("brand"),
    )
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="invoice_custom_fields",
        verbose_name=_("customer"),
    )
    label = models.CharField(_("label"), max_length=60, help_text=_('e.g. "PO number", "Cost centre"'))
    value = models.CharField(_("value"), max_length=200)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("invoice custom field")
        verbose_name_plural = _("invoice custom fields")
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(brand__isnull=False, customer__isnull=True) | Q(brand__isnull=True, customer__isnull=False),
                name="invoice_custom_field_brand_xor_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.value}"


class InvoiceLineColumn(models.Model):
    """An extra column of a brand's invoice lines, showing one key of the lines' metadata."""

    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="line_columns", verbose_name=_("brand"))
    metadata_key = models.SlugField(
        _("metadata key"), max_length=50, help_text=_('Key of the line metadata, e.g. "media_published".')
    )
    label = models.CharField(_("column title"), max_length=40, help_text=_('e.g. "Media published"'))
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("invoice line column")
        verbose_name_plural = _("invoice line columns")
        ordering = ["position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["brand", "metadata_key"], name="invoice_line_column_unique_key"),
        ]

    def __str__(self) -> str:
        return self.label


class NumberSequence(models.Model):
    """A gapless counter for one series (brand × document kind × scope such as the year)."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("invoice")
        CREDIT_NOTE = "credit_note", _("credit note")

    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="sequences", verbose_name=_("brand"))
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    scope = models.CharField(_("scope"), max_length=20, blank=True, help_text=_("e.g. the year for yearly series"))
    last_value = models.PositiveBigIntegerField(_("last number issued"), default=0)
    # When the last number was issued: the next one is never dated earlier (number order is date order).
    last_issued_at = models.DateTimeField(_("last issued"), null=True, blank=True)
    # chain_hash of the last document of the series: the next one's chain_previous.
    chain_head = models.CharField(_("chain head"), max_length=64, blank=True)

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


class LoadedValuesMixin:
    """Remembers the database values of `tracked_fields` when a row is loaded (from_db),
    so a save can tell what changed without another query."""

    tracked_fields: tuple[str, ...] = ()  # attnames

    @staticmethod
    def _copy_value(value: Any) -> Any:
        # JSON columns hold mutable dicts and lists: keep our own copy so in-place edits show.
        return copy.deepcopy(value) if isinstance(value, dict | list) else value

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        tracked = cls.tracked_fields
        instance._loaded_values = {
            name: cls._copy_value(value) for name, value in zip(field_names, values, strict=True) if name in tracked
        }
        return instance

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        names = None if fields is None else {self._meta.get_field(name).attname for name in fields}
        loaded = self.__dict__.setdefault("_loaded_values", {})
        for name in self.tracked_fields:
            if (names is None or name in names) and name in self.__dict__:
                loaded[name] = self._copy_value(self.__dict__[name])

    def _remember_saved_values(self) -> None:
        self._loaded_values = {
            name: self._copy_value(self.__dict__[name]) for name in self.tracked_fields if name in self.__dict__
        }

    def _database_values(self, names: Iterable[str]) -> dict[str, Any]:
        """Values of `names` as the database holds them (what from_db saw, else one query)."""
        names = list(names)
        loaded: dict[str, Any] = getattr(self, "_loaded_values", None) or {}
        missing = [name for name in names if name not in loaded]
        if missing and self.pk is not None:
            row = type(self)._base_manager.using(self._state.db).filter(pk=self.pk).values(*missing).first()
            if row is None:
                return {}
            loaded = {**loaded, **row}
        return {name: loaded[name] for name in names if name in loaded}

    def _attnames(self, update_fields: Iterable[str] | None) -> set[str] | None:
        if update_fields is None:
            return None
        return {self._meta.get_field(name).attname for name in update_fields}


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
    # Set at finalization too, printed or relied upon (issue 13): frozen as well.
    "due_at",
    "collection_method",
    "language",
    "content_hash",
    # Prepaid credits (issue 16, wallets): what the customer's credit grants paid.
    "credits_applied",
    "chain_previous",
    "chain_hash",
)
_FROZEN_INVOICE_FIELD_SET = frozenset(FROZEN_INVOICE_FIELDS)


def _attname(model: type[models.Model], name: str) -> str:
    try:
        return model._meta.get_field(name).attname
    except FieldDoesNotExist:
        return name  # e.g. "pk": let QuerySet.update report it


class InvoiceQuerySet(models.QuerySet):
    """Refuses bulk writes that would change or delete finalized invoices.

    The check costs one query and only runs for writes that could touch a frozen column;
    on PostgreSQL the trigger of migration 0002 refuses the same writes atomically.
    """

    def _touches_finalized(self) -> bool:
        return self.exclude(status="draft").exists()

    def update(self, **kwargs):
        attnames = {_attname(self.model, name) for name in kwargs}
        back_to_draft = kwargs.get("status") == "draft"
        if (attnames & _FROZEN_INVOICE_FIELD_SET or back_to_draft) and self._touches_finalized():
            changed = ", ".join(sorted(attnames & _FROZEN_INVOICE_FIELD_SET)) or "status back to draft"
            raise FrozenInvoiceError(
                gettext("Finalized invoices cannot change (%(changed)s); issue a credit note to correct one.")
                % {"changed": changed}
            )
        return super().update(**kwargs)

    update.alters_data = True

    def delete(self):
        if self._touches_finalized():
            raise FrozenInvoiceError(
                gettext("Finalized invoices cannot be deleted; void them instead (they keep their number).")
            )
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True


class InvoiceLineQuerySet(models.QuerySet):
    """Refuses writes to lines of finalized invoices (one query per bulk write)."""

    def _touches_finalized(self) -> bool:
        return self.exclude(invoice__status="draft").exists()

    def update(self, **kwargs):
        if self._touches_finalized():
            raise FrozenInvoiceError(
                gettext("Lines of a finalized invoice cannot change; issue a credit note instead.")
            )
        return super().update(**kwargs)

    update.alters_data = True

    def delete(self):
        if self._touches_finalized():
            raise FrozenInvoiceError(
                gettext("Lines of a finalized invoice cannot be deleted; issue a credit note instead.")
            )
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        invoice_ids = {obj.invoice_id for obj in objs}
        if Invoice._base_manager.filter(pk__in=invoice_ids).exclude(status="draft").exists():
            raise FrozenInvoiceError(gettext("Lines cannot be added to a finalized invoice."))
        return super().bulk_create(objs, *args, **kwargs)


class Invoice(LoadedValuesMixin, models.Model):
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
        # Issue 16 (usage): progressive billing, a usage threshold reached mid-period (Stripe's name).
        SUBSCRIPTION_THRESHOLD = "subscription_threshold", _("usage threshold reached")

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
    # Hash chain of the number series (invoices/chain.py): keyed, each link covers the one before.
    chain_previous = models.CharField(_("previous chain hash"), max_length=64, blank=True)
    chain_hash = models.CharField(_("chain hash"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Prepaid credits (issue 16, wallets): paid by the customer's credit grants at finalization,
    # before the customer balance; amount_due = total - credits_applied - starting_balance_applied.
    credits_applied = models.BigIntegerField(
        _("prepaid credits applied"), default=0, help_text=_("Prepaid credits (wallet) used on this invoice.")
    )

    objects = InvoiceQuerySet.as_manager()

    tracked_fields = (*FROZEN_INVOICE_FIELDS, "status")

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["finalized_at"]),
            # The reports' MRR summary finds the invoices that changed since its last refresh.
            models.Index(fields=["updated_at"], name="invoice_updated_at_idx"),
            # Issue 20: the console list's default order (-created_at, -pk), read in index order.
            models.Index(fields=["created_at", "id"], name="invoice_created_at_idx"),
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

    def save(self, *args, **kwargs) -> None:
        self._refuse_frozen_changes(update_fields=self._attnames(kwargs.get("update_fields")))
        super().save(*args, **kwargs)
        self._remember_saved_values()

    def delete(self, *args, **kwargs):
        if self.pk is not None and self._database_values(["status"]).get("status", "draft") != self.Status.DRAFT:
            raise FrozenInvoiceError(
                gettext("Invoice %(number)s is finalized and cannot be deleted; void it instead (it keeps its number).")
                % {"number": self.number}
            )
        return super().delete(*args, **kwargs)

    @property
    def is_frozen(self) -> bool:
        return self.status != self.Status.DRAFT

    def _refuse_frozen_changes(self, *, update_fields: set[str] | None) -> None:
        if self.pk is None:
            return  # a new row
        before = self._database_values(["status"])
        if before.get("status", self.Status.DRAFT) == self.Status.DRAFT:
            return  # a draft (or a row not in the database yet) may change freely
        if self.status == self.Status.DRAFT:
            raise FrozenInvoiceError(
                gettext("Invoice %(number)s is finalized and cannot go back to draft.") % {"number": self.number}
            )
        written = [
            name
            for name in FROZEN_INVOICE_FIELDS
            if name in self.__dict__ and (update_fields is None or name in update_fields)
        ]
        stored = self._database_values(written)
        changed = [name for name in written if name in stored and stored[name] != self.__dict__[name]]
        if changed:
            raise FrozenInvoiceError(
                gettext(
                    "Invoice %(number)s is finalized: %(changed)s cannot change; issue a credit note to correct it."
                )
                % {"number": self.number, "changed": ", ".join(changed)}
            )


class InvoiceLine(LoadedValuesMixin, models.Model):
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
    # Issue 16 item 11 (tax codes): the code that decided the line's VAT, and the exemption
    # reason its tax group prints (EN 16931 BT-120/121) for exempt and out-of-scope lines.
    tax_code = models.CharField(_("tax code"), max_length=50, blank=True)
    tax_exemption_reason_code = models.CharField(_("exemption reason code"), max_length=30, blank=True)
    tax_exemption_reason = models.CharField(_("exemption reason"), max_length=300, blank=True)

    objects = InvoiceLineQuerySet.as_manager()

    tracked_fields = ("invoice_id",)

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice", "position", "pk"]

    def __str__(self) -> str:
        return self.description

    def save(self, *args, **kwargs) -> None:
        self._refuse_if_invoice_finalized("added or changed")
        super().save(*args, **kwargs)
        self._remember_saved_values()

    def delete(self, *args, **kwargs):
        self._refuse_if_invoice_finalized("deleted")
        return super().delete(*args, **kwargs)

    def _refuse_if_invoice_finalized(self, action: str) -> None:
        # The parent's status is not on this row: one query, only on single-line writes.
        invoice_ids = {self.invoice_id, *self._database_values(["invoice_id"]).values()} - {None}
        numbers = list(
            Invoice._base_manager.filter(pk__in=invoice_ids)
            .exclude(status=Invoice.Status.DRAFT)
            .values_list("number", flat=True)
        )
        if numbers:
            raise FrozenInvoiceError(
                (
                    gettext(
                        "Invoice %(number)s is finalized: its lines cannot be deleted; issue a credit note instead."
                    )
                    if action == "deleted"
                    else gettext(
                        "Invoice %(number)s is finalized: its lines cannot be added or changed; "
                        "issue a credit note instead."
                    )
                )
                % {"number": numbers[0]}
            )


CREDIT_NOTE_FROZEN_FIELDS = (
    "invoice_id",
    "brand_id",
    "customer_id",
    "number",
    "reason",
    "memo",
    "currency",
    "subtotal",
    "tax_total",
    "total",
    "reduced_amount_due",
    "credited_to_balance",
    "refunded",
    "tax_breakdown",
    "issued_snapshot",
    "issued_at",
    "content_hash",
    "chain_previous",
    "chain_hash",
)


class CreditNoteQuerySet(models.QuerySet):
    """Issued credit notes are documents: only their status may change (issued -> void)."""

    def update(self, **kwargs):
        if set(kwargs) - {"status"} and self.exists():
            raise FrozenInvoiceError(gettext("Issued credit notes cannot change; issue another credit note instead."))
        return super().update(**kwargs)

    update.alters_data = True

    def delete(self):
        if self.exists():
            raise FrozenInvoiceError(gettext("Issued credit notes cannot be deleted."))
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True


class CreditNoteLineQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if self.exists():
            raise FrozenInvoiceError(gettext("Lines of an issued credit note cannot change."))
        return super().update(**kwargs)

    update.alters_data = True

    def delete(self):
        if self.exists():
            raise FrozenInvoiceError(gettext("Lines of an issued credit note cannot be deleted."))
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True


class CreditNote(LoadedValuesMixin, models.Model):
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
    chain_previous = models.CharField(_("previous chain hash"), max_length=64, blank=True)
    chain_hash = models.CharField(_("chain hash"), max_length=64, blank=True)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("issued by")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = CreditNoteQuerySet.as_manager()

    tracked_fields = (*CREDIT_NOTE_FROZEN_FIELDS, "status")

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

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            stored = self._database_values(self.tracked_fields)
            if stored:
                update_fields = self._attnames(kwargs.get("update_fields"))
                changed = [
                    name
                    for name in CREDIT_NOTE_FROZEN_FIELDS
                    if name in self.__dict__
                    and name in stored
                    and (update_fields is None or name in update_fields)
                    and stored[name] != self.__dict__[name]
                ]
                if stored.get("status") == self.Status.VOID and self.status != self.Status.VOID:
                    changed.append("status")
                if changed:
                    raise FrozenInvoiceError(
                        gettext(
                            "Credit note %(number)s is issued: %(changed)s cannot change; issue "
                            "another credit note instead."
                        )
                        % {"number": stored.get("number", self.number), "changed": ", ".join(changed)}
                    )
        super().save(*args, **kwargs)
        self._remember_saved_values()

    def delete(self, *args, **kwargs):
        if self.pk is not None:
            raise FrozenInvoiceError(
                gettext("Credit note %(number)s is issued and cannot be deleted.") % {"number": self.number}
            )
        return super().delete(*args, **kwargs)


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

    objects = CreditNoteLineQuerySet.as_manager()

    class Meta:
        verbose_name = _("credit note line")
        verbose_name_plural = _("credit note lines")

    def __str__(self) -> str:
        return self.description

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise FrozenInvoiceError(gettext("Lines of an issued credit note cannot change."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise FrozenInvoiceError(gettext("Lines of an issued credit note cannot be deleted."))


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
        return f"{self.get_kind_display()} {format_money(self.amount, self.currency)}"


class Document(models.Model):
    """The stored PDF (Factur-X, PDF/A-3 with its CII XML) of an issued invoice or credit note.

    Rendered once after finalization from the frozen data and never replaced: `sha256`
    identifies the bytes that were sent to the customer.
    """

    invoice = models.OneToOneField(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="document", verbose_name=_("invoice")
    )
    credit_note = models.OneToOneField(
        CreditNote,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="document",
        verbose_name=_("credit note"),
    )
    file = models.FileField(_("file"), upload_to="documents/%Y/%m/")
    sha256 = models.CharField(_("sha256"), max_length=64)
    size = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        constraints = [
            models.CheckConstraint(
                condition=Q(invoice__isnull=False, credit_note__isnull=True)
                | Q(invoice__isnull=True, credit_note__isnull=False),
                name="document_invoice_xor_credit_note",
            ),
        ]

    def __str__(self) -> str:
        return self.file.name


# --- Tax codes per product / price (issue 16, item 11: invoices/tax_models.py) ---

from invoices.tax_models import TaxCode, TaxCodeRate  # noqa: E402, F401
