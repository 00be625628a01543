"""Usage thresholds (alerts) and their crossings, with progressive billing (issue 16, item 9).

Imported from billing/models.py so Django registers them in the billing app.

A threshold watches one subscription's usage in its current period: the cost of its
metered items so far (minor units) or the units of one meter. The first time the
usage reaches it in a period, one `UsageThresholdCrossing` row is written (unique per
threshold and period: the durable "once per period" marker), with the event
`subscription.usage_threshold_reached`; a progressive threshold also invoices the
usage so far, and the period-end invoice subtracts what was billed.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.limits import MAX_AMOUNT


class UsageThreshold(models.Model):
    class Kind(models.TextChoices):
        AMOUNT = "amount", _("cost of usage so far")
        UNITS = "units", _("units of a meter")

    subscription = models.ForeignKey(
        "billing.Subscription",
        on_delete=models.CASCADE,
        related_name="usage_thresholds",
        verbose_name=_("subscription"),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    amount = models.BigIntegerField(
        _("amount (minor units)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("For an amount threshold: the cost of usage so far, in the subscription's currency."),
    )
    meter = models.ForeignKey(
        "billing.Meter",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="thresholds",
        verbose_name=_("meter"),
    )
    units = models.DecimalField(
        _("units"),
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001"))],
    )
    progressive_billing = models.BooleanField(
        _("invoice the usage when reached"),
        default=False,
        help_text=_("Progressive billing: invoice the usage so far; the period-end invoice bills the rest."),
    )
    # The highest usage event id already looked at by the sweeper (durable "dirty" marker).
    checked_event_id = models.BigIntegerField(_("last event checked"), default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("usage threshold")
        verbose_name_plural = _("usage thresholds")
        ordering = ["subscription_id", "kind", "amount", "units", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="amount", amount__isnull=False, amount__gte=1, amount__lte=MAX_AMOUNT, units__isnull=True)
                    | Q(kind="units", units__isnull=False, meter__isnull=False, amount__isnull=True)
                ),
                name="usage_threshold_kind_fields",
            ),
        ]

    def __str__(self) -> str:
        value = self.amount if self.kind == self.Kind.AMOUNT else self.units
        return f"{self.subscription_id}: {self.kind} ≥ {value}"


class UsageThresholdCrossing(models.Model):
    """A threshold reached in one period: written once (unique), the marker of 'already alerted'."""

    threshold = models.ForeignKey(
        UsageThreshold, on_delete=models.CASCADE, related_name="crossings", verbose_name=_("threshold")
    )
    period_start = models.DateTimeField(_("period start"))
    reached_at = models.DateTimeField(_("reached at"))
    usage_amount = models.BigIntegerField(_("cost of usage when reached"), default=0)
    usage_units = models.DecimalField(_("units when reached"), max_digits=20, decimal_places=6, default=Decimal(0))
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("progressive invoice"),
    )

    class Meta:
        verbose_name = _("usage threshold reached")
        verbose_name_plural = _("usage thresholds reached")
        ordering = ["-reached_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["threshold", "period_start"], name="usage_threshold_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.threshold_id} @ {self.period_start:%Y-%m-%d}"


class UsageEventKey(models.Model):
    """The deduplication key of a usage event (issue 20): (meter, event id) is unique here.

    Usage events are partitioned by month on PostgreSQL, and a unique index on a
    partitioned table must contain the partition key (the timestamp): it could no
    longer catch the same event id sent again with another timestamp. This narrow
    table keeps deduplication exact across months; ingestion inserts the keys first
    (ON CONFLICT DO NOTHING) and stores only the events whose key was new.
    """

    meter = models.ForeignKey("billing.Meter", on_delete=models.PROTECT, related_name="+", verbose_name=_("meter"))
    external_id = models.CharField(_("event id"), max_length=100)
    # The event's timestamp: retention deletes the keys of dropped months (docs/usage-at-scale.md).
    timestamp = models.DateTimeField(_("timestamp"), db_index=True)

    class Meta:
        verbose_name = _("usage event key")
        verbose_name_plural = _("usage event keys")
        constraints = [models.UniqueConstraint(fields=["meter", "external_id"], name="usage_event_key_unique")]

    def __str__(self) -> str:
        return f"{self.meter_id}:{self.external_id}"


class UsageRollup(models.Model):
    """Usage pre-aggregated per customer, meter, UTC day and set of event properties (issue 20).

    Maintained at ingestion in the same transaction as the events (INSERT ... ON CONFLICT
    DO UPDATE), so it always equals what the raw events say. The billing run reads whole
    days here and raw events only for a period's partial first and last days. Unique
    counts and percentage pricing (each transaction) read raw events (docs/usage-at-scale.md).
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", verbose_name=_("customer")
    )
    meter = models.ForeignKey("billing.Meter", on_delete=models.PROTECT, related_name="+", verbose_name=_("meter"))
    day = models.DateField(_("day (UTC)"))
    # md5 of the properties as canonical JSON: one row per distinct set of dimensions.
    dimensions_hash = models.CharField(_("dimensions hash"), max_length=32)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    event_count = models.BigIntegerField(_("events"), default=0)
    value_sum = models.DecimalField(_("sum"), max_digits=32, decimal_places=6, default=Decimal(0))
    value_max = models.DecimalField(_("maximum"), max_digits=20, decimal_places=6, default=Decimal(0))
    # The day's last event (latest timestamp, then the last stored): for `last` and `latest` meters.
    last_timestamp = models.DateTimeField(_("last event at"))
    last_event_id = models.BigIntegerField(_("last event"))
    last_value = models.DecimalField(_("last value"), max_digits=20, decimal_places=6, default=Decimal(0))

    class Meta:
        verbose_name = _("usage rollup")
        verbose_name_plural = _("usage rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "meter", "day", "dimensions_hash"], name="usage_rollup_unique_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.meter_id}:{self.day}"


class UsageMonthRollup(models.Model):
    """Usage per customer, meter and UTC month (issue 20 item 7): the daily rollups summed over
    the month, whatever the event properties.

    Written at ingestion in the same transaction as the events and the daily rollups (one more
    INSERT ... ON CONFLICT DO UPDATE of the same batch), so it always equals the sum of the
    month's daily rollups (`verify_integrity --check usage_months`). The usage report reads
    whole months here, whole days of the edge months from the daily rollups and the partial
    first and last days from the raw events (docs/reports.md).
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="+", verbose_name=_("customer")
    )
    # No index of its own: the unique constraint leads with the meter.
    meter = models.ForeignKey(
        "billing.Meter", on_delete=models.PROTECT, related_name="+", db_index=False, verbose_name=_("meter")
    )
    month = models.DateField(_("month (UTC, first day)"))
    event_count = models.BigIntegerField(_("events"), default=0)
    value_sum = models.DecimalField(_("sum"), max_digits=32, decimal_places=6, default=Decimal(0))
    value_max = models.DecimalField(_("maximum"), max_digits=20, decimal_places=6, default=Decimal(0))

    class Meta:
        verbose_name = _("usage month rollup")
        verbose_name_plural = _("usage month rollups")
        constraints = [
            models.UniqueConstraint(fields=["meter", "month", "customer"], name="usage_month_rollup_unique_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}:{self.meter_id}:{self.month:%Y-%m}"
