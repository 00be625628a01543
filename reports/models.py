"""Reports read other apps' tables; this app owns no data, only the permission to look."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Dashboard(models.Model):
    """No table: carries the `view_dashboards` permission and hangs the dashboards in the admin."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_dashboards", _("Can view the reporting dashboards"))]
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboards")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class CustomerMonthMrr(models.Model):
    """MRR of one customer in one month, per brand and price: the subscription lines of
    issued invoices summed (reports/summary.py). A cache derived from the invoices,
    refreshed before each MRR report reads it; never edited by hand.

    Rows without brand and price are the customer's total of the month (what the
    reports read unless they filter by brand or plan), one per customer-month."""

    # No foreign-key constraints in the database (db_constraint=False): the rows are derived
    # from issued invoices, whose customers and prices cannot be deleted (PROTECT), and a build
    # writes millions of them at once; PostgreSQL checked each one's three references at commit
    # (minutes at 1,000,000 subscriptions: docs/PERFORMANCE.md). Django still cascades deletes.
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("customer"),
    )
    currency = models.CharField(_("currency"), max_length=3)
    brand = models.ForeignKey(
        "invoices.Brand",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("brand"),
    )
    price = models.ForeignKey(
        "billing.Price",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("price"),
    )
    month = models.IntegerField(_("month number"), help_text=_("year × 12 + month − 1"))
    mrr = models.BigIntegerField(_("MRR"))
    # Totals only: the customer's MRR the month before (0 if none) and whether this is
    # the customer's first paying month, so movements need no window over the months.
    # A total row with mrr 0 is the month after the customer left (churn).
    previous_mrr = models.BigIntegerField(_("MRR the month before"), default=0)
    is_first = models.BooleanField(_("first paying month"), default=False)

    class Meta:
        verbose_name = _("customer MRR of a month")
        verbose_name_plural = _("customer MRR by month")
        default_permissions = ()
        indexes = [
            models.Index(fields=["currency", "customer", "month"], name="reports_mrr_customer_month"),
            models.Index(
                fields=["currency", "customer", "month"],
                condition=models.Q(price__isnull=True),
                name="reports_mrr_customer_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.month} {self.mrr} {self.currency}"


class MrrSummaryState(models.Model):
    """When the MRR summary was last brought up to date, and in which time zone it is cut."""

    refreshed_at = models.DateTimeField(_("refreshed at"), null=True)
    timezone = models.CharField(_("time zone"), max_length=64, blank=True)
    # Invoice changes stamped before this instant are in the summary (reports/summary.py):
    # the last refresh's start, moved back to the oldest write transaction still open then.
    changes_seen_until = models.DateTimeField(_("changes seen until"), null=True)

    class Meta:
        verbose_name = _("MRR summary state")
        verbose_name_plural = _("MRR summary state")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.refreshed_at} ({self.timezone})"


class SummaryState(models.Model):
    """When one of the reports' month summaries (billed, invoices by status, revenue
    recognition: reports/summaries.py) was last brought up to date, and in which time zone
    its months are cut. One row per summary; the MRR summary keeps its own (MrrSummaryState)."""

    name = models.CharField(_("summary"), max_length=40, unique=True)
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True)
    timezone = models.CharField(_("time zone"), max_length=64, blank=True)
    # Invoice changes stamped before this instant are in the summary (the refresh's start,
    # moved back to the oldest write transaction still open then, as for the MRR summary).
    changes_seen_until = models.DateTimeField(_("changes seen until"), null=True)

    class Meta:
        verbose_name = _("report summary state")
        verbose_name_plural = _("report summary states")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.name} {self.refreshed_at} ({self.timezone})"


class _MonthSummary(models.Model):
    """The grain every month summary shares: what the reports' central filters select on
    (brand, mode, currency, the customer's country) and the month (year × 12 + month − 1,
    cut in TARIF_REPORTS_TIMEZONE). A cache derived from the invoices; never edited by hand."""

    brand = models.ForeignKey(
        "invoices.Brand", on_delete=models.CASCADE, related_name="+", db_index=False, verbose_name=_("brand")
    )
    livemode = models.BooleanField(_("live mode"))
    currency = models.CharField(_("currency"), max_length=3)
    country = models.CharField(_("country"), max_length=2, blank=True)
    month = models.IntegerField(_("month number"), help_text=_("year × 12 + month − 1"))

    class Meta:
        abstract = True
        default_permissions = ()


class BilledMonthSummary(_MonthSummary):
    """What issued invoices billed in a month (of finalization) by line kind; the kind
    `invoice_total` holds the invoices' totals (the `billed` report)."""

    kind = models.CharField(_("kind"), max_length=20)
    net = models.BigIntegerField(_("net amount"))
    tax = models.BigIntegerField(_("tax"))

    class Meta(_MonthSummary.Meta):
        verbose_name = _("billed amounts of a month")
        verbose_name_plural = _("billed amounts by month")
        indexes = [models.Index(fields=["livemode", "month"], name="reports_billed_month")]

    def __str__(self) -> str:
        return f"{self.month} {self.kind} {self.net} {self.currency}"


class InvoiceStatusSummary(_MonthSummary):
    """Invoices issued in a month (drafts: created in it) by their status (the
    `invoices-by-status` report)."""

    status = models.CharField(_("status"), max_length=20)
    invoices = models.BigIntegerField(_("invoices"))
    total = models.BigIntegerField(_("total"))
    amount_remaining = models.BigIntegerField(_("amount remaining"))

    class Meta(_MonthSummary.Meta):
        verbose_name = _("invoices of a month by status")
        verbose_name_plural = _("invoices by month and status")
        indexes = [models.Index(fields=["livemode", "month"], name="reports_status_month")]

    def __str__(self) -> str:
        return f"{self.month} {self.status} {self.invoices}"


class RecognitionSummary(_MonthSummary):
    """Revenue of plans billed in advance per month and price: invoiced (by month of
    finalization) and recognized (straight-line over the service period's month ends)."""

    price = models.ForeignKey(
        "billing.Price", on_delete=models.CASCADE, null=True, related_name="+", db_index=False, verbose_name=_("price")
    )
    invoiced = models.BigIntegerField(_("invoiced"))
    recognized = models.BigIntegerField(_("recognized"))

    class Meta(_MonthSummary.Meta):
        verbose_name = _("revenue recognition of a month")
        verbose_name_plural = _("revenue recognition by month")
        indexes = [models.Index(fields=["livemode", "month"], name="reports_recognition_month")]

    def __str__(self) -> str:
        return f"{self.month} {self.invoiced}/{self.recognized} {self.currency}"


class ReceivablesSummary(_MonthSummary):
    """What the AR aging and DSO reports read (reports/summaries.py): per month, what customers
    owed at its end (for the month of the last refresh: at the refresh) by days past due
    (`kind` an aging bucket), and the totals of the invoices issued in it (`kind` "billed")."""

    kind = models.CharField(_("kind"), max_length=10)
    invoices = models.BigIntegerField(_("invoices"))
    amount = models.BigIntegerField(_("amount"))

    class Meta(_MonthSummary.Meta):
        verbose_name = _("receivables of a month")
        verbose_name_plural = _("receivables by month")
        indexes = [models.Index(fields=["livemode", "month"], name="reports_receivables_month")]

    def __str__(self) -> str:
        return f"{self.month} {self.kind} {self.amount} {self.currency}"


class PaymentSummary(_MonthSummary):
    """Payment attempts of a month (by `attempted_at`) per method, gateway, status and decline
    code (the `payments` and `declines` reports); brand: the invoice's."""

    method = models.CharField(_("method"), max_length=16)
    gateway = models.CharField(_("gateway"), max_length=20)
    status = models.CharField(_("status"), max_length=16)
    decline_code = models.CharField(_("decline code"), max_length=64, blank=True)
    attempts = models.BigIntegerField(_("attempts"))
    amount = models.BigIntegerField(_("amount"))

    class Meta(_MonthSummary.Meta):
        verbose_name = _("payment attempts of a month")
        verbose_name_plural = _("payment attempts by month")
        indexes = [models.Index(fields=["livemode", "month"], name="reports_payment_month")]

    def __str__(self) -> str:
        return f"{self.month} {self.method} {self.status} {self.attempts}"


class MrrMonthTotal(models.Model):
    """The MRR summary's customer totals of one month summed per mode and currency: what the
    unfiltered and currency-filtered MRR reports and the dashboard read (a few hundred rows
    for 24 months instead of every customer-month). Kept by the summary's writer in the same
    transaction as the rows it sums (reports/summary.py); never edited by hand."""

    livemode = models.BooleanField(_("live mode"))
    currency = models.CharField(_("currency"), max_length=3)
    month = models.IntegerField(_("month number"), help_text=_("year × 12 + month − 1"))
    customer_months = models.BigIntegerField(_("customer-months"))  # rows summed; none left: removed
    customers = models.BigIntegerField(_("paying customers"))
    mrr = models.BigIntegerField(_("MRR"))
    start_customers = models.BigIntegerField(_("paying customers the month before"))
    start_mrr = models.BigIntegerField(_("MRR the month before"))
    new_customers = models.BigIntegerField(_("new customers"))
    new = models.BigIntegerField(_("new MRR"))
    expansion = models.BigIntegerField(_("expansion"))
    contraction = models.BigIntegerField(_("contraction"))
    reactivated_customers = models.BigIntegerField(_("reactivated customers"))
    reactivation = models.BigIntegerField(_("reactivation"))
    churned_customers = models.BigIntegerField(_("churned customers"))
    churn = models.BigIntegerField(_("churned MRR"))

    class Meta:
        verbose_name = _("MRR totals of a month")
        verbose_name_plural = _("MRR totals by month")
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["livemode", "currency", "month"], name="reports_mrr_month_total_unique")
        ]

    def __str__(self) -> str:
        return f"{self.month} {self.mrr} {self.currency}"


class MrrCohortCell(models.Model):
    """One cell of the cohort table, per mode and currency: the customers whose first paying
    month is `cohort` and who still pay in `month`, and what they pay then (from the MRR
    summary's customer totals). What the unfiltered and currency-filtered cohort report
    reads (a few hundred cells for 24 months instead of joining every customer's first month
    to its later ones). Kept by the summary's writer in the same transaction as the rows it
    counts (reports/summary.py); never edited by hand."""

    livemode = models.BooleanField(_("live mode"))
    currency = models.CharField(_("currency"), max_length=3)
    cohort = models.IntegerField(_("cohort month number"), help_text=_("year × 12 + month − 1"))
    month = models.IntegerField(_("month number"), help_text=_("year × 12 + month − 1"))
    customers = models.BigIntegerField(_("paying customers"))  # none left: removed
    mrr = models.BigIntegerField(_("MRR"))

    class Meta:
        verbose_name = _("cohort cell")
        verbose_name_plural = _("cohort cells")
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(
                fields=["livemode", "currency", "cohort", "month"], name="reports_mrr_cohort_cell_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cohort} {self.month} {self.customers} {self.currency}"


class HomeFigures(models.Model):
    """The console home's whole-book counts for one mode, as of `computed_at` (issue 20):
    live subscriptions by status, open and overdue receivables by currency, and what the next
    billing run will bill. Counting them exactly costs seconds at a million subscriptions, so
    the home page reads this row; the beat task `reports.refresh_home_figures` recomputes it
    every minute (and after a billing run) with the live selectors of
    reports/selectors/dashboard.py, the reference. A cache; never edited by hand."""

    livemode = models.BooleanField(_("live mode"), unique=True)
    computed_at = models.DateTimeField(_("computed at"))
    today = models.DateField(_("day"))  # receivables are overdue when due before this day
    subscriptions = models.JSONField(_("live subscriptions by status"), default=dict)
    receivables = models.JSONField(_("receivables by currency"), default=list)
    next_run_at = models.DateTimeField(_("next billing run"), null=True)
    next_run_due = models.BigIntegerField(_("subscriptions due for the next run"), default=0)
    revenue_this_month = models.JSONField(_("billed this month by currency"), default=list)

    class Meta:
        verbose_name = _("home figures")
        verbose_name_plural = _("home figures")
        default_permissions = ()

    def __str__(self) -> str:
        return f"{'live' if self.livemode else 'test'} {self.computed_at}"


class UsageDigestRow(models.Model):
    """The usage report's page for its preset periods, as of the last refresh (issue 20 item 7).

    At a million customers the page's figures (per meter totals, distinct customers and the top
    customers of each meter) aggregate every customer-month of the period: seconds of SQL at each
    read. The beat task `reports.refresh_usage_digest` computes them for the periods finance opens
    (the last twelve months, this month and last month, no filter) in each mode; the page reads
    these rows and says as of when (reports/usage_digest.py). Rank 0: a meter's totals; 1 to N:
    its top customers; -1 (no meter): the customers with usage of any meter. A cache derived
    from the usage rollups; never edited by hand."""

    livemode = models.BooleanField(_("live mode"))
    start = models.DateField(_("first month"))
    end = models.DateField(_("last month"))
    meter_id = models.BigIntegerField(_("meter"), null=True)
    rank = models.IntegerField(_("rank"))
    customer_id = models.BigIntegerField(_("customer"), null=True)
    customers = models.BigIntegerField(_("customers"), null=True)
    events = models.BigIntegerField(_("events"))
    total = models.DecimalField(_("total reported"), max_digits=38, decimal_places=6, null=True)
    peak = models.DecimalField(_("largest value"), max_digits=20, decimal_places=6, null=True)

    class Meta:
        verbose_name = _("usage report digest row")
        verbose_name_plural = _("usage report digest rows")
        default_permissions = ()
        indexes = [models.Index(fields=["livemode", "start", "end"], name="reports_usage_digest_period")]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m}..{self.end:%Y-%m} {self.meter_id} #{self.rank}"
