"""Catalog, subscriptions, usage, one-off items, billing runs, test clocks and the event log."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.cycles import CycleSpec, CycleSpecError
from billing.limits import amount_validators, quantity_validators
from billing.pricing import PricingError, tiers_from_json, validate_tiers
from config.formatting import format_money
from config.modes import default_livemode
from customers.fields import EncryptedTextField
from customers.models import validate_currency_code


class TestClock(models.Model):
    """A frozen time that test customers live at; advancing it runs their billing."""

    __test__ = False  # not a pytest test class

    class Status(models.TextChoices):
        READY = "ready", _("ready")
        ADVANCING = "advancing", _("advancing")

    name = models.CharField(_("name"), max_length=100)
    frozen_time = models.DateTimeField(_("frozen time"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.READY)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("test clock")
        verbose_name_plural = _("test clocks")

    def __str__(self) -> str:
        return f"{self.name} @ {self.frozen_time:%Y-%m-%d %H:%M}"


class Product(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    unit_label = models.CharField(_("unit label"), max_length=40, blank=True, help_text=_("e.g. seat, GB, call"))
    active = models.BooleanField(_("active"), default=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    # Issue 16 item 11 (tax codes): empty means the brand's default tax code.
    class SupplyKind(models.TextChoices):
        # The e-invoicing reform's operation category (BT-23) is derived from the lines' products.
        SERVICES = "services", _("services")
        GOODS = "goods", _("goods")

    supply_kind = models.CharField(
        _("kind of supply"),
        max_length=8,
        choices=SupplyKind.choices,
        default=SupplyKind.SERVICES,
        help_text=_("Goods or services, for the operation category of e-invoices."),
    )
    tax_code = models.ForeignKey(
        "invoices.TaxCode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("tax code"),
        help_text=_("Empty: the brand's default tax code (else the standard rate)."),
    )

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


MAX_METER_DIMENSIONS = 10  # issue 16 (usage)


class Meter(models.Model):
    """A usage meter: events reported against its key are aggregated per billing period."""

    class Aggregation(models.TextChoices):
        SUM = "sum", _("sum")
        MAX = "max", _("maximum")
        LAST = "last", _("last value")
        UNIQUE_COUNT = "unique_count", _("count of unique values")
        # Issue 16 (usage): Lago's `latest`, Stripe's `last_ever`: carried into periods without events.
        LATEST = "latest", _("latest value ever")

    key = models.SlugField(_("event key"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    aggregation = models.CharField(_("aggregation"), max_length=16, choices=Aggregation.choices)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Issue 16 (usage): dimensions, the event properties prices may filter on; and the mode.
    dimensions = models.JSONField(
        _("dimensions"),
        default=list,
        blank=True,
        help_text=_('Event properties prices may filter on, e.g. ["region", "model"].'),
    )
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )

    class Meta:
        verbose_name = _("usage meter")
        verbose_name_plural = _("usage meters")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        dimensions = self.dimensions
        valid = (
            isinstance(dimensions, list)
            and len(dimensions) <= MAX_METER_DIMENSIONS
            and all(isinstance(name, str) and 0 < len(name) <= 40 for name in dimensions)
            and len(set(dimensions)) == len(dimensions)
        )
        if not valid:
            raise ValidationError(
                {
                    "dimensions": _("At most %(max)s distinct property names of 1 to 40 characters.")
                    % {"max": MAX_METER_DIMENSIONS}
                }
            )


class Price(models.Model):
    """How much a product costs. Immutable once used: archive it and create a new one."""

    class Type(models.TextChoices):
        RECURRING = "recurring", _("recurring")
        ONE_TIME = "one_time", _("one-time")

    class Scheme(models.TextChoices):
        PER_UNIT = "per_unit", _("flat per unit")
        TIERED_GRADUATED = "tiered_graduated", _("tiered, graduated")
        TIERED_VOLUME = "tiered_volume", _("tiered, volume")
        PACKAGE = "package", _("package")
        PERCENTAGE = "percentage", _("percentage of transaction amounts")  # issue 16 (usage)

    class UsageType(models.TextChoices):
        LICENSED = "licensed", _("licensed (quantity billed in advance)")
        METERED = "metered", _("metered (usage billed in arrears)")

    class TaxBehavior(models.TextChoices):
        EXCLUSIVE = "exclusive", _("tax exclusive")
        INCLUSIVE = "inclusive", _("tax inclusive")

    class BillingTiming(models.TextChoices):
        IN_ADVANCE = "in_advance", _("in advance")
        IN_ARREARS = "in_arrears", _("in arrears")

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices", verbose_name=_("product"))
    nickname = models.CharField(_("nickname"), max_length=200, blank=True)
    lookup_key = models.SlugField(_("lookup key"), max_length=100, blank=True)
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency_code])
    type = models.CharField(_("type"), max_length=12, choices=Type.choices, default=Type.RECURRING)
    scheme = models.CharField(_("billing scheme"), max_length=20, choices=Scheme.choices, default=Scheme.PER_UNIT)
    unit_amount = models.DecimalField(
        _("unit amount (minor units)"),
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=amount_validators(),
        help_text=_("In cents for EUR; fractions allowed for metered prices (0.5 = half a cent)."),
    )
    tiers = models.JSONField(
        _("tiers"),
        default=list,
        blank=True,
        help_text=_('[{"up_to": 10, "unit_amount": "500", "flat_amount": 0}, {"up_to": null, "unit_amount": "400"}]'),
    )
    package_size = models.PositiveIntegerField(_("package size"), default=1, validators=quantity_validators())
    package_rounding = models.CharField(
        _("package rounding"), max_length=4, choices=[("up", _("up")), ("down", _("down"))], default="up"
    )
    cycle = models.JSONField(_("billing cycle"), null=True, blank=True)
    usage_type = models.CharField(_("usage type"), max_length=10, choices=UsageType.choices, default=UsageType.LICENSED)
    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, null=True, blank=True, related_name="prices", verbose_name=_("meter")
    )
    tax_behavior = models.CharField(
        _("tax behaviour"), max_length=10, choices=TaxBehavior.choices, default=TaxBehavior.EXCLUSIVE
    )
    trial_days = models.PositiveIntegerField(_("trial days"), default=0)
    active = models.BooleanField(_("active"), default=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Issue 16 item 11 (tax codes): overrides the product's tax code; not a frozen term
    # (a tax code follows the law, not the deal: a change applies to the next invoices).
    tax_code = models.ForeignKey(
        "invoices.TaxCode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("tax code"),
        help_text=_("Empty: the product's tax code."),
    )
    # -- Issue 16 (usage): free units, percentage pricing, usage filters --
    free_units = models.PositiveIntegerField(
        _("free units"),
        default=0,
        validators=quantity_validators(minimum=0),
        help_text=_("Package: the first units are free. Percentage: the first events bear no fixed fee."),
    )
    percentage_rate = models.DecimalField(
        _("percentage rate"),
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text=_("Percent of each transaction amount (1.2 = 1.2 %)."),
    )
    fixed_amount = models.DecimalField(
        _("fixed fee per transaction (minor units)"),
        max_digits=20,
        decimal_places=6,
        default=Decimal(0),
        validators=amount_validators(),
    )
    free_amount = models.DecimalField(
        _("free transaction amount (minor units)"),
        max_digits=20,
        decimal_places=6,
        default=Decimal(0),
        validators=amount_validators(),
        help_text=_("The first part of the period's transaction amount bears no rate."),
    )
    per_transaction_min_amount = models.DecimalField(
        _("per-transaction minimum (minor units)"),
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=amount_validators(),
    )
    per_transaction_max_amount = models.DecimalField(
        _("per-transaction maximum (minor units)"),
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=amount_validators(),
    )
    usage_filter = models.JSONField(
        _("usage filter"),
        default=dict,
        blank=True,
        help_text=_('Bill only the meter\'s events whose properties match, e.g. {"region": ["eu"]}.'),
    )
    # -- issue 16, cycles: when a licensed price is billed, and a minimum spend per period (frozen terms).
    billing_timing = models.CharField(
        _("billing timing"),
        max_length=12,
        choices=BillingTiming.choices,
        default=BillingTiming.IN_ADVANCE,
        help_text=_("In advance: each period is billed when it starts. In arrears: when it ends (licensed prices)."),
    )
    minimum_amount = models.BigIntegerField(
        _("minimum spend per period (minor units)"),
        default=0,
        validators=amount_validators(),
        help_text=_("Metered prices: when a period's usage costs less, a true-up line bills the difference."),
    )

    class Meta:
        verbose_name = _("price")
        verbose_name_plural = _("prices")
        ordering = ["product__name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(type="one_time", cycle__isnull=True) | Q(type="recurring", cycle__isnull=False),
                name="price_recurring_has_cycle",
            ),
            models.CheckConstraint(
                condition=Q(usage_type="licensed") | Q(usage_type="metered", meter__isnull=False, type="recurring"),
                name="price_metered_has_meter",
            ),
            models.CheckConstraint(
                # Metered prices are billed in arrears by nature; the setting is for licensed ones.
                condition=Q(billing_timing="in_advance") | Q(usage_type="licensed", type="recurring"),
                name="price_arrears_is_recurring_licensed",
            ),
            models.CheckConstraint(
                condition=Q(minimum_amount=0) | Q(usage_type="metered"),
                name="price_minimum_is_metered",
            ),
            models.UniqueConstraint(
                # Per mode, as at Stripe: a test catalog may reuse the live lookup keys.
                fields=["livemode", "lookup_key"],
                condition=Q(active=True) & ~Q(lookup_key=""),
                name="price_unique_active_lookup",
            ),
        ]

    def __str__(self) -> str:
        label = self.nickname or self.product.name
        return f"{label} ({self.currency})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.type == self.Type.RECURRING:
            if not self.cycle:
                errors["cycle"] = _("A recurring price needs a billing cycle.")
            else:
                try:
                    CycleSpec.from_dict(self.cycle)
                except CycleSpecError as error:
                    errors["cycle"] = str(error)
        elif self.cycle:
            errors["cycle"] = _("A one-time price has no billing cycle.")
        if self.scheme in (self.Scheme.PER_UNIT, self.Scheme.PACKAGE) and self.unit_amount is None:
            errors["unit_amount"] = _("This billing scheme needs a unit amount.")
        if self.scheme in (self.Scheme.TIERED_GRADUATED, self.Scheme.TIERED_VOLUME):
            try:
                validate_tiers(tiers_from_json(self.tiers))
            except PricingError as error:
                errors["tiers"] = str(error)
        if self.usage_type == self.UsageType.METERED and self.meter_id is None:
            errors["meter"] = _("A metered price needs a usage meter.")
        errors.update(usage_pricing_errors(self))
        if self.billing_timing == self.BillingTiming.IN_ARREARS and (
            self.type != self.Type.RECURRING or self.usage_type != self.UsageType.LICENSED
        ):
            errors["billing_timing"] = _("Only recurring licensed prices are billed in arrears by choice.")
        if self.minimum_amount and self.usage_type != self.UsageType.METERED:
            errors["minimum_amount"] = _("A minimum spend applies to metered prices only.")
        if errors:
            raise ValidationError(errors)


def usage_pricing_errors(price: Price) -> dict[str, str]:
    """Issue 16 (usage): what is wrong with a price's free units, percentage and filter fields."""
    errors: dict[str, str] = {}
    if price.scheme == Price.Scheme.PERCENTAGE:
        if price.usage_type != Price.UsageType.METERED:
            errors["scheme"] = str(_("Percentage pricing applies to metered prices only."))
        if price.percentage_rate is None:
            errors["percentage_rate"] = str(_("Percentage pricing needs a rate."))
        if price.unit_amount is not None or price.tiers:
            errors["unit_amount"] = str(_("Percentage pricing has no unit amount or tiers."))
        low, high = price.per_transaction_min_amount, price.per_transaction_max_amount
        if low is not None and high is not None and low > high:
            errors["per_transaction_max_amount"] = str(_("The maximum must not be less than the minimum."))
    else:
        has_percentage_fields = (
            price.percentage_rate is not None
            or price.fixed_amount
            or price.free_amount
            or price.per_transaction_min_amount is not None
            or price.per_transaction_max_amount is not None
        )
        if has_percentage_fields:
            errors["percentage_rate"] = str(_("Only a percentage price takes a rate, fees and transaction bounds."))
        if price.free_units and price.scheme != Price.Scheme.PACKAGE:
            errors["free_units"] = str(_("Free units apply to package and percentage prices only."))
    if price.usage_filter:
        errors.update(_usage_filter_errors(price))
    return errors


def _usage_filter_errors(price: Price) -> dict[str, str]:
    usage_filter = price.usage_filter
    shape_ok = isinstance(usage_filter, dict) and all(
        isinstance(key, str)
        and isinstance(values, list)
        and values
        and all(isinstance(value, str) and 0 < len(value) <= 100 for value in values)
        for key, values in usage_filter.items()
    )
    if not shape_ok:
        return {"usage_filter": str(_('A usage filter maps property names to lists of values: {"region": ["eu"]}.'))}
    if price.usage_type != Price.UsageType.METERED or price.meter is None:
        return {"usage_filter": str(_("Only a metered price filters its meter's events."))}
    unknown = sorted(set(usage_filter) - set(price.meter.dimensions or []))
    if unknown:
        return {
            "usage_filter": str(_("The meter has no dimension %(names)s.") % {"names": ", ".join(unknown)}),
        }
    return {}


class Coupon(models.Model):
    class Duration(models.TextChoices):
        ONCE = "once", _("once")
        REPEATING = "repeating", _("for a number of periods")
        FOREVER = "forever", _("forever")

    name = models.CharField(_("name"), max_length=200)
    percent_off = models.DecimalField(
        _("percent off"),
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    amount_off = models.BigIntegerField(
        _("amount off (minor units)"), null=True, blank=True, validators=amount_validators()
    )
    currency = models.CharField(_("currency"), max_length=3, blank=True, validators=[validate_currency_code])
    duration = models.CharField(_("duration"), max_length=10, choices=Duration.choices, default=Duration.ONCE)
    duration_in_periods = models.PositiveIntegerField(_("duration in periods"), null=True, blank=True)
    max_redemptions = models.PositiveIntegerField(_("max redemptions"), null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(_("times redeemed"), default=0, editable=False)
    redeem_by = models.DateTimeField(_("redeem by"), null=True, blank=True)
    applies_to = models.ManyToManyField(
        Product, blank=True, related_name="coupons", verbose_name=_("limited to products")
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
    # -- discounts (issue 16 item 6) --
    carry_over = models.BooleanField(
        _("carry the rest over"),
        default=False,
        help_text=_(
            "Amount-off coupons used once: what an invoice cannot use is kept for the next invoices until used up."
        ),
    )

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(percent_off__isnull=False, amount_off__isnull=True)
                    | Q(percent_off__isnull=True, amount_off__isnull=False, amount_off__gt=0)
                ),
                name="coupon_percent_xor_amount",
            ),
            models.CheckConstraint(
                condition=Q(percent_off__isnull=True) | Q(percent_off__lte=100), name="coupon_percent_at_most_100"
            ),
            models.CheckConstraint(
                condition=~Q(duration="repeating") | Q(duration_in_periods__gte=1),
                name="coupon_repeating_has_periods",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValidationError(_("Give either a percentage or an amount off, not both."))
        if self.amount_off is not None and not self.currency:
            raise ValidationError({"currency": _("An amount-off coupon needs a currency.")})
        if self.duration == self.Duration.REPEATING and not self.duration_in_periods:
            raise ValidationError({"duration_in_periods": _("Say for how many periods the coupon repeats.")})
        if self.carry_over and (self.amount_off is None or self.duration != self.Duration.ONCE):
            raise ValidationError({"carry_over": _("Only an amount-off coupon used once can carry its rest over.")})


class PromotionCode(models.Model):
    """A customer-facing code that redeems a coupon."""

    coupon = models.ForeignKey(
        Coupon, on_delete=models.PROTECT, related_name="promotion_codes", verbose_name=_("coupon")
    )
    code = models.CharField(_("code"), max_length=50, unique=True)
    active = models.BooleanField(_("active"), default=True)
    max_redemptions = models.PositiveIntegerField(_("max redemptions"), null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(_("times redeemed"), default=0, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, null=True, blank=True, verbose_name=_("only for customer")
    )
    first_time_only = models.BooleanField(_("first-time customers only"), default=False)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("promotion code")
        verbose_name_plural = _("promotion codes")

    def __str__(self) -> str:
        return self.code


class Subscription(models.Model):
    class Status(models.TextChoices):
        INCOMPLETE = "incomplete", _("incomplete")
        TRIALING = "trialing", _("trialing")
        ACTIVE = "active", _("active")
        PAST_DUE = "past_due", _("past due")
        PAUSED = "paused", _("paused")
        CANCELED = "canceled", _("canceled")
        UNPAID = "unpaid", _("unpaid")

    class CollectionMethod(models.TextChoices):
        CHARGE_AUTOMATICALLY = "charge_automatically", _("charge automatically")
        SEND_INVOICE = "send_invoice", _("send invoice")

    class TrialEndBehavior(models.TextChoices):
        CREATE_INVOICE = "create_invoice", _("invoice anyway")
        PAUSE = "pause", _("pause the subscription")
        CANCEL = "cancel", _("cancel the subscription")

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="subscriptions", verbose_name=_("customer")
    )
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.INCOMPLETE)
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency_code])
    cycle = models.JSONField(_("billing cycle"))
    billing_cycle_anchor = models.DateTimeField(_("billing cycle anchor"))
    current_period_start = models.DateTimeField(_("current period start"))
    current_period_end = models.DateTimeField(_("current period end"), db_index=True)
    collection_method = models.CharField(
        _("collection method"),
        max_length=24,
        choices=CollectionMethod.choices,
        default=CollectionMethod.CHARGE_AUTOMATICALLY,
    )
    days_until_due = models.PositiveIntegerField(_("days until due"), null=True, blank=True)
    trial_start = models.DateTimeField(_("trial start"), null=True, blank=True)
    trial_end = models.DateTimeField(_("trial end"), null=True, blank=True)
    trial_end_behavior = models.CharField(
        _("at trial end without a payment method"),
        max_length=16,
        choices=TrialEndBehavior.choices,
        default=TrialEndBehavior.CREATE_INVOICE,
        help_text=_("What happens when a trial started without a payment method ends without one."),
    )
    cancel_at_period_end = models.BooleanField(_("cancel at period end"), default=False)
    # A cancellation scheduled at a chosen instant (Stripe's cancel_at); the billing run ends it then.
    cancel_at = models.DateTimeField(_("cancels at"), null=True, blank=True)
    canceled_at = models.DateTimeField(_("canceled at"), null=True, blank=True)
    cancellation_reason = models.CharField(_("cancellation reason"), max_length=200, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True)
    resumes_at = models.DateTimeField(_("resumes at"), null=True, blank=True)
    coupon = models.ForeignKey(
        Coupon,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="subscriptions",
        verbose_name=_("coupon"),
    )
    promotion_code = models.ForeignKey(
        PromotionCode, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("promotion code")
    )
    discount_periods_applied = models.PositiveIntegerField(_("discounted periods so far"), default=0)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # -- issue 16, cycles: the rule the anchor came from, and a free first period.
    billing_cycle_anchor_config = models.JSONField(
        _("billing cycle anchor rule"),
        null=True,
        blank=True,
        help_text=_('How the anchor was chosen, e.g. {"day_of_month": 31, "month": null, "hour": 0}.'),
    )
    free_until = models.DateTimeField(
        _("free until"),
        null=True,
        blank=True,
        help_text=_("Time before this instant is not billed (a first period created without proration)."),
    )
    # -- discounts (issue 16 items 3 and 6) --
    proration_credit_basis = models.CharField(
        _("proration credit basis"),
        max_length=10,
        blank=True,
        choices=[("classic", _("classic: the current price")), ("flexible", _("flexible: what was last billed"))],
        help_text=_("How unused time is credited on a change or a cancellation. Blank: the platform's default."),
    )

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "current_period_end"]),
            # The console list's default order (issue 20), read backwards.
            models.Index(fields=["created_at", "id"], name="subscription_created_at_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(current_period_end__gt=models.F("current_period_start")),
                name="subscription_period_not_empty",
            ),
            models.CheckConstraint(
                condition=~Q(collection_method="send_invoice") | Q(days_until_due__isnull=False),
                name="subscription_send_invoice_has_terms",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer} ({self.get_status_display()})"


class SubscriptionItem(models.Model):
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="items", verbose_name=_("subscription")
    )
    price = models.ForeignKey(
        Price, on_delete=models.PROTECT, related_name="subscription_items", verbose_name=_("price")
    )
    quantity = models.PositiveIntegerField(_("quantity"), default=1, validators=quantity_validators())
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # -- issue 16, cycles: an item billed in arrears owes its time from here (null: its period's start).
    arrears_from = models.DateTimeField(_("billed in arrears from"), null=True, blank=True)

    class Meta:
        verbose_name = _("subscription item")
        verbose_name_plural = _("subscription items")
        constraints = [models.UniqueConstraint(fields=["subscription", "price"], name="subscription_item_unique_price")]

    def __str__(self) -> str:
        return f"{self.price} × {self.quantity}"


class SubscriptionChange(models.Model):
    """History of plan and quantity changes, with the proration they produced."""

    class Kind(models.TextChoices):
        CREATE = "create", _("created")
        CHANGE = "change", _("plan or quantity change")
        SCHEDULED = "scheduled", _("scheduled change applied")
        CANCEL = "cancel", _("canceled")
        PAUSE = "pause", _("paused")
        RESUME = "resume", _("resumed")

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="changes", verbose_name=_("subscription")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    effective_at = models.DateTimeField(_("effective at"))
    items_before = models.JSONField(_("items before"), default=list)
    items_after = models.JSONField(_("items after"), default=list)
    mrr_before = models.BigIntegerField(_("MRR before"), default=0)
    mrr_after = models.BigIntegerField(_("MRR after"), default=0)
    proration_mode = models.CharField(_("proration"), max_length=24, blank=True)
    proration_amount = models.BigIntegerField(_("prorated amount"), default=0)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("acting user")
    )
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)

    class Meta:
        verbose_name = _("subscription change")
        verbose_name_plural = _("subscription changes")
        ordering = ["effective_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @ {self.effective_at:%Y-%m-%d}"


class ScheduledChange(models.Model):
    """A change that applies at a future instant (e.g. a downgrade at period end)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        APPLIED = "applied", _("applied")
        CANCELED = "canceled", _("canceled")

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="scheduled_changes", verbose_name=_("subscription")
    )
    effective_at = models.DateTimeField(_("effective at"))
    items = models.JSONField(_("new items"), help_text=_('[{"price": 12, "quantity": 3}]'))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("scheduled change")
        verbose_name_plural = _("scheduled changes")
        constraints = [
            models.UniqueConstraint(
                fields=["subscription"], condition=Q(status="pending"), name="one_pending_change_per_subscription"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.subscription_id} @ {self.effective_at:%Y-%m-%d} ({self.status})"


class UsageEvent(models.Model):
    """A metered usage report, deduplicated by the integrator's own event id."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="usage_events", verbose_name=_("customer")
    )
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="events", verbose_name=_("meter"))
    external_id = models.CharField(_("event id"), max_length=100)
    value = models.DecimalField(_("value"), max_digits=20, decimal_places=6, default=Decimal(1))
    unique_value = models.CharField(
        _("value counted once"),
        max_length=200,
        blank=True,
        help_text=_("For unique-count meters: e.g. the active user's id."),
    )
    timestamp = models.DateTimeField(_("timestamp"))
    created_at = models.DateTimeField(_("received"), auto_now_add=True)
    # Issue 16 (usage): dimensions (region, model...) that price filters select on.
    properties = models.JSONField(_("properties"), default=dict, blank=True)

    class Meta:
        verbose_name = _("usage event")
        verbose_name_plural = _("usage events")
        # Deduplication lives in UsageEventKey (issue 20): on PostgreSQL this table is
        # partitioned by month and its primary key is (id, timestamp), in SQL only.
        indexes = [models.Index(fields=["customer", "meter", "timestamp"])]

    def __str__(self) -> str:
        return f"{self.meter_id}:{self.external_id}"


class InvoiceItem(models.Model):
    """A pending charge or credit (one-off, proration) waiting for the next invoice."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="invoice_items", verbose_name=_("customer")
    )
    subscription = models.ForeignKey(
        Subscription,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoice_items",
        verbose_name=_("subscription"),
    )
    price = models.ForeignKey(Price, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("price"))
    description = models.CharField(_("description"), max_length=300)
    quantity = models.PositiveIntegerField(_("quantity"), default=1, validators=quantity_validators())
    amount = models.BigIntegerField(_("amount (minor units)"), validators=amount_validators(allow_negative=True))
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency_code])
    period_start = models.DateTimeField(_("period start"), null=True, blank=True)
    period_end = models.DateTimeField(_("period end"), null=True, blank=True)
    proration = models.BooleanField(_("proration"), default=False)
    discountable = models.BooleanField(_("discountable"), default=True)
    tax_behavior = models.CharField(
        _("tax behaviour"), max_length=10, choices=Price.TaxBehavior.choices, default=Price.TaxBehavior.EXCLUSIVE
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoice_items",
        verbose_name=_("invoice"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("invoice item")
        verbose_name_plural = _("invoice items")
        indexes = [models.Index(fields=["customer"], condition=Q(invoice__isnull=True), name="pending_items_idx")]

    def __str__(self) -> str:
        return self.description


LIVE_SCOPE = "live"


class BillingRun(models.Model):
    """One pass of the billing run; resumable, with progress shown in the admin.

    One run at a time per scope (live, or one test clock): a partial unique constraint
    on running runs, plus an advisory lock on PostgreSQL (billing/locks.py). Counters
    move with F() in the transaction that commits the invoices they count.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        INTERRUPTED = "interrupted", _("interrupted")

    as_of = models.DateTimeField(_("bills periods ending by"))
    test_clock = models.ForeignKey(
        TestClock, on_delete=models.CASCADE, null=True, blank=True, verbose_name=_("test clock")
    )
    scope = models.CharField(
        _("scope"),
        max_length=40,
        default=LIVE_SCOPE,
        help_text=_("What the run bills: live customers, or the customers of one test clock."),
    )
    inline = models.BooleanField(
        _("processed by its starter"),
        default=False,
        help_text=_("Processed by the process that started it (else by Celery workers, chunk by chunk)."),
    )
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(_("due subscription-periods"), default=0)
    processed = models.PositiveIntegerField(_("processed"), default=0)
    invoices_created = models.PositiveIntegerField(_("invoices created"), default=0)
    failures = models.PositiveIntegerField(
        _("failures"), default=0, help_text=_("Subscriptions this run could not invoice (listed below).")
    )
    last_error = models.TextField(_("last error"), blank=True)
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    heartbeat_at = models.DateTimeField(
        _("last progress"), null=True, blank=True, help_text=_("Moves with every committed chunk.")
    )
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("billing run")
        verbose_name_plural = _("billing runs")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope"], condition=Q(status="running"), name="billing_run_one_running_per_scope"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.as_of:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        if not self.total:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed / self.total))


class BillingRunChunk(models.Model):
    """One chunk of a run (keyed by its first subscription): counted once when it completes."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DONE = "done", _("done")

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("run"))
    first_subscription_id = models.BigIntegerField(_("first subscription"))
    size = models.PositiveIntegerField(_("subscriptions"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    invoices_created = models.PositiveIntegerField(_("invoices created"), default=0)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("billing run chunk")
        verbose_name_plural = _("billing run chunks")
        constraints = [
            models.UniqueConstraint(fields=["run", "first_subscription_id"], name="billing_run_chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.first_subscription_id}"


class BillingRunFailure(models.Model):
    """A subscription a run could not invoice, and why; the rest of its chunk was invoiced."""

    class Resolution(models.TextChoices):
        INVOICED = "invoiced", _("invoiced by a later run")
        RETRIED = "retried", _("failed again in a later run")

    run = models.ForeignKey(
        BillingRun, on_delete=models.CASCADE, related_name="failed_subscriptions", verbose_name=_("run")
    )
    subscription = models.ForeignKey(
        "Subscription", on_delete=models.CASCADE, related_name="billing_failures", verbose_name=_("subscription")
    )
    period_start = models.DateTimeField(_("period due from"), null=True, blank=True)
    code = models.CharField(_("code"), max_length=80)
    message = models.TextField(_("reason"))
    attempts = models.PositiveIntegerField(_("attempts"), default=1)
    created_at = models.DateTimeField(_("first failed"), auto_now_add=True)
    last_attempt_at = models.DateTimeField(_("last attempt"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolution = models.CharField(_("resolution"), max_length=10, choices=Resolution.choices, blank=True)

    class Meta:
        verbose_name = _("failed subscription")
        verbose_name_plural = _("failed subscriptions")
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "subscription"], name="billing_run_failure_once_per_run"),
        ]
        indexes = [
            models.Index(
                fields=["subscription"], condition=Q(resolved_at__isnull=True), name="billing_run_failure_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.code}"


# --- Payments: methods, charges and their attempts, refunds, dunning (docs/payments.md) ---


class PaymentMethod(models.Model):
    """How a customer pays. Only the gateway's token and display data are kept here:
    never a card number, a CVC or a full IBAN (they stay at the gateway)."""

    class Kind(models.TextChoices):
        CARD = "card", _("card")
        WALLET = "wallet", _("wallet (Apple Pay, Google Pay)")
        SEPA_DEBIT = "sepa_debit", _("SEPA Direct Debit")
        BANK_TRANSFER = "bank_transfer", _("bank transfer")
        MANUAL = "manual", _("manual (cheque, cash, other)")

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="payment_methods", verbose_name=_("customer")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    gateway = models.CharField(_("gateway"), max_length=20, help_text=_("sandbox, stripe, or manual"))
    token = models.CharField(_("gateway token"), max_length=255, blank=True)
    brand = models.CharField(_("card brand"), max_length=20, blank=True)
    last4 = models.CharField(_("last 4"), max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"), null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(_("expiry year"), null=True, blank=True)
    wallet = models.CharField(_("wallet"), max_length=20, blank=True)
    iban_last4 = models.CharField(_("IBAN last 4"), max_length=4, blank=True)
    mandate_reference = models.CharField(_("mandate reference"), max_length=64, blank=True)
    is_default = models.BooleanField(_("default"), default=False)
    active = models.BooleanField(_("active"), default=True, help_text=_("False once detached."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    detached_at = models.DateTimeField(_("detached"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment method")
        verbose_name_plural = _("payment methods")
        ordering = ["customer", "-is_default", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=Q(is_default=True, active=True), name="payment_method_one_default"
            ),
            models.UniqueConstraint(
                fields=["gateway", "token"], condition=~Q(token=""), name="payment_method_unique_token"
            ),
        ]

    def __str__(self) -> str:
        if self.kind in (self.Kind.CARD, self.Kind.WALLET):
            expiry = f" ({self.exp_month:02d}/{self.exp_year})" if self.exp_month and self.exp_year else ""
            return f"{self.brand or self.wallet} •••• {self.last4}{expiry}"
        if self.kind == self.Kind.SEPA_DEBIT:
            return f"SEPA •••• {self.iban_last4}"
        return self.get_kind_display()

    @property
    def chargeable(self) -> bool:
        """Can Tarif pull money with it (as opposed to waiting for the customer to pay)?"""
        return self.active and self.kind in (self.Kind.CARD, self.Kind.WALLET, self.Kind.SEPA_DEBIT)


class Payment(models.Model):
    """One attempt to collect money for an invoice, or a payment recorded by finance staff.

    Automatic attempts carry a deterministic idempotency key
    (`invoice:<pk>:attempt:<n>`) sent to the gateway, so a retry after a crash between
    the gateway's answer and our database update finds the same charge instead of
    charging again. An invoice is paid only by `succeeded` rows.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending (sent to the gateway)")
        REQUIRES_ACTION = "requires_action", _("requires customer authentication")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    class Method(models.TextChoices):
        CARD = "card", _("card")
        WALLET = "wallet", _("wallet")
        SEPA_DEBIT = "sepa_debit", _("SEPA Direct Debit")
        BANK_TRANSFER = "bank_transfer", _("bank transfer")
        CHEQUE = "cheque", _("cheque")
        CASH = "cash", _("cash")
        OTHER = "other", _("other")

    invoice = models.ForeignKey(
        "invoices.Invoice", on_delete=models.PROTECT, related_name="payments", verbose_name=_("invoice")
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="payments", verbose_name=_("customer")
    )
    payment_method = models.ForeignKey(
        PaymentMethod,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
        verbose_name=_("payment method"),
    )
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    gateway = models.CharField(_("gateway"), max_length=20)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    amount = models.BigIntegerField(_("amount (minor units)"), validators=[MinValueValidator(1)])
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency_code])
    amount_refunded = models.BigIntegerField(_("refunded (minor units)"), default=0)
    attempt = models.PositiveIntegerField(_("attempt"), null=True, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, null=True, blank=True, unique=True)
    gateway_reference = models.CharField(_("gateway reference"), max_length=255, blank=True)
    decline_code = models.CharField(_("decline code"), max_length=64, blank=True)
    failure_message = models.CharField(_("failure message"), max_length=300, blank=True)
    reference = models.CharField(
        _("reference"), max_length=100, blank=True, help_text=_("Cheque number, transfer reference...")
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("recorded by")
    )
    attempted_at = models.DateTimeField(_("attempted at"))
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)
    # The reports' payment summary recomputes the months of the attempts changed since its last
    # refresh (reports/summaries.py); the database default covers rows written by COPY.
    updated_at = models.DateTimeField(_("updated"), auto_now=True, db_default=Now())

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments and attempts")
        ordering = ["-attempted_at", "-pk"]
        indexes = [
            models.Index(fields=["invoice", "status"]),
            # The console list's default order (issue 20), read backwards.
            models.Index(fields=["attempted_at", "id"], name="payment_attempted_at_idx"),
            models.Index(fields=["updated_at"], name="payment_updated_at_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "attempt"], condition=Q(attempt__isnull=False), name="payment_unique_attempt"
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=models.F("amount")),
                name="payment_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        # Headings, links and messages show this: money as the reader writes it, never minor units.
        money = format_money(self.amount, self.currency)
        return f"{money} {self.get_method_display()} ({self.get_status_display()})"


class Refund(models.Model):
    """A refund and its approval: requested -> approved -> executed | failed, or rejected.

    Above TARIF_REFUND_APPROVAL_THRESHOLD a second staff member approves (four-eyes);
    below, the request is approved at once. Executing it refunds through the payment's
    gateway and issues the credit note (`credit_note_create(..., refund=amount)`).
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("awaiting approval")
        APPROVED = "approved", _("approved")
        REJECTED = "rejected", _("rejected")
        EXECUTED = "executed", _("refunded")
        FAILED = "failed", _("failed at the gateway")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("payment"))
    invoice = models.ForeignKey(
        "invoices.Invoice", on_delete=models.PROTECT, related_name="refunds", verbose_name=_("invoice")
    )
    credit_note = models.OneToOneField(
        "invoices.CreditNote",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refund_record",
        verbose_name=_("credit note"),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.REQUESTED)
    amount = models.BigIntegerField(_("amount (minor units)"), validators=[MinValueValidator(1)])
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=24)
    memo = models.TextField(_("note"), blank=True)
    needs_approval = models.BooleanField(_("needs a second approver"), default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved or rejected by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.CharField(_("decision note"), max_length=300, blank=True)
    gateway_reference = models.CharField(_("gateway reference"), max_length=255, blank=True)
    # A failed refund's reason, as data: a stable code and the message in English (the API's
    # default language and the gateways'); screens show it in the reader's language
    # (`failure_text`). Never the language of whoever happened to approve it.
    failure_code = models.CharField(_("failure code"), max_length=64, blank=True)
    failure_message = models.CharField(_("failure message"), max_length=300, blank=True)
    requested_at = models.DateTimeField(_("requested at"))
    executed_at = models.DateTimeField(_("executed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-requested_at", "-pk"]
        permissions = [("approve_refund", _("Can approve or reject refunds of other staff members"))]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_positive_amount"),
            models.CheckConstraint(
                # Four-eyes, also in the database: an approved request has a different decider.
                condition=Q(needs_approval=False)
                | Q(status__in=["requested", "rejected"])
                | (Q(decided_by__isnull=False) & ~Q(decided_by=models.F("requested_by"))),
                name="refund_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} ({self.get_status_display()})"

    @property
    def idempotency_key(self) -> str:
        return f"refund:{self.pk}"

    def failure_text(self) -> str:
        """Why the refund failed, in the active language: the stored English message through
        the catalogue (a message with values in it has no entry and stays in English)."""
        if not self.failure_message:
            return ""
        return gettext(self.failure_message)


class DunningCase(models.Model):
    """Recovery of one unpaid invoice: retries on a schedule, then a final action."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("retrying")
        RECOVERED = "recovered", _("recovered")
        EXHAUSTED = "exhausted", _("final action taken")
        CLOSED = "closed", _("closed (invoice voided or settled otherwise)")

    invoice = models.OneToOneField(
        "invoices.Invoice", on_delete=models.PROTECT, related_name="dunning", verbose_name=_("invoice")
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="dunning_cases", verbose_name=_("customer")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    schedule_days = models.JSONField(_("retry schedule (days after the first failure)"), default=list)
    retries_done = models.PositiveSmallIntegerField(_("retries done"), default=0)
    started_at = models.DateTimeField(_("first failure"))
    next_retry_at = models.DateTimeField(_("next retry"), null=True, blank=True, db_index=True)
    final_action = models.CharField(_("final action"), max_length=16, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta:
        verbose_name = _("dunning case")
        verbose_name_plural = _("dunning cases")
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["status", "next_retry_at"])]

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.get_status_display()}"


class GatewayEvent(models.Model):
    """Inbound webhook events, stored once per provider event id (duplicates are ignored)."""

    gateway = models.CharField(_("gateway"), max_length=20)
    event_id = models.CharField(_("event id"), max_length=255)
    type = models.CharField(_("type"), max_length=80)
    payload = models.JSONField(_("payload"), default=dict)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        verbose_name = _("gateway event")
        verbose_name_plural = _("gateway events")
        constraints = [models.UniqueConstraint(fields=["gateway", "event_id"], name="gateway_event_once")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.event_id} {self.type}"


# --- The sandbox gateway's own state: it plays the remote provider (billing/payments/sandbox.py) ---


class SandboxPaymentMethod(models.Model):
    """What the sandbox "provider" knows about a tokenized test card or IBAN (never the number)."""

    token = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=16)
    behaviour = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox payment method")
        verbose_name_plural = _("sandbox payment methods")

    def __str__(self) -> str:
        return self.token


class SandboxCharge(models.Model):
    idempotency_key = models.CharField(max_length=100, unique=True)
    reference = models.CharField(max_length=64, unique=True)
    token = models.CharField(max_length=64)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16)
    decline_code = models.CharField(max_length=64, blank=True)
    amount_refunded = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox charge")
        verbose_name_plural = _("sandbox charges")

    def __str__(self) -> str:
        return self.reference


class SandboxRefund(models.Model):
    idempotency_key = models.CharField(max_length=100, unique=True)
    reference = models.CharField(max_length=64, unique=True)
    charge = models.ForeignKey(SandboxCharge, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    status = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox refund")
        verbose_name_plural = _("sandbox refunds")

    def __str__(self) -> str:
        return self.reference


class SandboxSetupSession(models.Model):
    """A hosted "add a card" page of the sandbox, playing Stripe Checkout in setup mode.

    The portal starts one and redirects the customer to it; the card form lives on the
    sandbox's page only; on success the sandbox redirects back with the session id and
    the portal completes it through the gateway (which hands the token over once).
    """

    session_id = models.CharField(max_length=64, unique=True)
    customer_reference = models.CharField(max_length=64)
    return_url = models.CharField(max_length=500)
    cancel_url = models.CharField(max_length=500)
    status = models.CharField(max_length=10, default="open")  # open -> complete -> consumed
    token = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)  # brand, last 4, expiry: never the number
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox setup session")
        verbose_name_plural = _("sandbox setup sessions")

    def __str__(self) -> str:
        return self.session_id


# -- outbound webhooks (billing/services/webhooks.py, docs/api.md) -----------------------


class WebhookEndpoint(models.Model):
    """An integrator's URL that receives the domain events, signed with its secret."""

    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    # The secret signs payloads, so it must be readable by us: encrypted at rest, never listed.
    secret = EncryptedTextField(_("signing secret"), editable=False)
    enabled_events = models.JSONField(
        _("event types"),
        default=list,
        blank=True,
        help_text=_('Types to send, e.g. ["invoice.finalized", "customer.subscription.*"]; ["*"] or empty: all.'),
    )
    active = models.BooleanField(_("active"), default=True)
    # Where the endpoint's event-log cursor starts (the last event before its creation); the
    # cursor itself (EventCursor `webhooks.endpoint.<id>`) moves, this field no longer does.
    last_event_id = models.BigIntegerField(_("last event fanned out"), default=0, editable=False)
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["-pk"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: retried with backoff until it succeeds or three days pass."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed (gave up)")

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    event = models.ForeignKey("events.DomainEvent", on_delete=models.CASCADE, related_name="+", verbose_name=_("event"))
    object_key = models.CharField(_("object"), max_length=90, help_text=_("Deliveries of one object go in order."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-pk"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["endpoint", "object_key", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("delivery")
    )
    attempted_at = models.DateTimeField(_("attempted at"))
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    # Only the status line ("502 Bad Gateway"): a response body is never stored nor shown (issue 13).
    response_excerpt = models.CharField(_("response status line"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.attempted_at:%Y-%m-%d %H:%M:%S}"


# --- Bank statements and reconciliation (billing/reconciliation_models.py) ---

# --- Discounts of subscriptions and customers (billing/discount_models.py, issue 16 item 6) ---
from billing.discount_models import CustomerDiscount, SubscriptionDiscount  # noqa: E402, F401
from billing.reconciliation_models import BankStatement, BankStatementLine  # noqa: E402, F401

# --- Imports from Stripe (billing/stripe_import_models.py) ---
from billing.stripe_import_models import StripeImportMapping, StripeImportRun  # noqa: E402, F401

# --- Pending updates and lifecycle notices (billing/update_models.py, issue 16 subupdate) ---
from billing.update_models import PendingUpdate, SubscriptionNotice  # noqa: E402, F401

# --- Usage thresholds and progressive billing (billing/usage_models.py, issue 16) ---
from billing.usage_models import (  # noqa: E402, F401
    UsageEventKey,
    UsageMonthRollup,
    UsageRollup,
    UsageThreshold,
    UsageThresholdCrossing,
)
