"""Imports from a Stripe account (docs/migrating-from-stripe.md): the run record and the
stripe id -> Tarif object mapping that makes a second run change nothing.

Imported from billing/models.py so Django registers them in the billing app; kept in their
own module to keep the big models file readable.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from customers.fields import EncryptedTextField

# The order an import reads a Stripe account in: what a later type points at comes first.
STRIPE_IMPORT_STAGES = (
    "products",
    "prices",
    "coupons",
    "customers",
    "promotion_codes",
    "payment_methods",
    "subscriptions",
    "invoices",
)


class StripeImportRun(models.Model):
    """One import of one Stripe account in one mode; resumable from its cursors.

    `cursors` holds, per object type, the id of the last Stripe object handled (Stripe lists
    page with `starting_after`), and `stages_done` the types finished: a crashed run resumes
    where it stopped. The key is kept encrypted only while the run is unfinished (a worker
    and a resume need it) and wiped when it is done.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed (resumable)")

    account_id = models.CharField(_("Stripe account"), max_length=64, blank=True)
    livemode = models.BooleanField(_("live mode"), help_text=_("From the key: sk_live_ imports live objects."))
    dry_run = models.BooleanField(_("dry run"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    api_base = models.CharField(_("API address"), max_length=200, blank=True)
    api_key = EncryptedTextField(_("API key"), blank=True, help_text=_("Encrypted at rest; wiped once done."))
    key_hint = models.CharField(_("key"), max_length=40, blank=True)
    open_invoices = models.CharField(
        _("open invoices"),
        max_length=8,
        default="report",
        help_text=_("report: left at Stripe and listed; carry: billed by Tarif on the next invoice."),
    )
    default_currency = models.CharField(
        _("account currency"), max_length=3, default="EUR", help_text=_("For customers Stripe has not billed yet.")
    )
    test_clock = models.ForeignKey(
        "billing.TestClock",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("test clock"),
        help_text=_("Test mode only: imported customers live on this clock (to rehearse renewals)."),
    )
    stage = models.CharField(_("stage"), max_length=20, blank=True)
    stages_done = models.JSONField(_("stages done"), default=list, blank=True)
    cursors = models.JSONField(_("cursors"), default=dict, blank=True)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    report = models.JSONField(_("not mapped"), default=list, blank=True)
    processed = models.PositiveIntegerField(_("objects read"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("Stripe import")
        verbose_name_plural = _("Stripe imports")
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"Stripe import {self.pk} ({self.account_id or '?'})"

    @property
    def progress_percent(self) -> int:
        return round(100 * len(self.stages_done) / len(STRIPE_IMPORT_STAGES))


class StripeImportMapping(models.Model):
    """A Stripe object already recreated in Tarif: unique per Stripe account, mode and id."""

    account_id = models.CharField(_("Stripe account"), max_length=64)
    livemode = models.BooleanField(_("live mode"))
    stripe_type = models.CharField(_("Stripe object"), max_length=32)
    stripe_id = models.CharField(_("Stripe id"), max_length=255)
    object_type = models.CharField(_("Tarif object"), max_length=40)
    object_id = models.BigIntegerField(_("Tarif id"))
    run = models.ForeignKey(
        StripeImportRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("run")
    )
    created_at = models.DateTimeField(_("imported"), auto_now_add=True)

    class Meta:
        verbose_name = _("Stripe import mapping")
        verbose_name_plural = _("Stripe import mappings")
        constraints = [
            models.UniqueConstraint(fields=["account_id", "livemode", "stripe_id"], name="stripe_import_once")
        ]

    def __str__(self) -> str:
        return f"{self.stripe_id} -> {self.object_type} {self.object_id}"
