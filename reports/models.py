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

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False, verbose_name=_("customer")
    )
    currency = models.CharField(_("currency"), max_length=3)
    brand = models.ForeignKey(
        "invoices.Brand",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_index=False,
        verbose_name=_("brand"),
    )
    price = models.ForeignKey(
        "billing.Price",
        on_delete=models.CASCADE,
        null=True,
        related_name="+",
        db_index=False,
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
