"""Subscription updates (issue 16, part `subupdate`): pending updates and lifecycle notice markers.

Imported from billing/models.py so Django registers them in the billing app.

* `PendingUpdate` (Stripe's `pending_update`, `payment_behavior=pending_if_incomplete`): an
  item change whose immediate invoice must be paid before the change applies. Applied when
  the invoice is paid, discarded (and its invoice voided) at `expires_at`.
* `SubscriptionNotice`: one row per lifecycle notice sent (`trial_will_end` for one trial
  end, `invoice_upcoming` for one period end). Its unique key is what makes the sweepers
  idempotent: a second sweep, a retried task or a test clock advanced twice finds the row.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class PendingUpdate(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        APPLIED = "applied", _("applied")
        EXPIRED = "expired", _("expired")

    subscription = models.ForeignKey(
        "billing.Subscription",
        on_delete=models.CASCADE,
        related_name="pending_updates",
        verbose_name=_("subscription"),
    )
    invoice = models.ForeignKey(
        "invoices.Invoice",
        on_delete=models.PROTECT,
        related_name="pending_updates",
        verbose_name=_("invoice to pay"),
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    # The items the subscription will have: [{"price": pk, "quantity": n}, ...].
    items = models.JSONField(_("items after the update"))
    proration_behavior = models.CharField(_("proration"), max_length=24)
    proration_amount = models.BigIntegerField(_("prorated amount"), default=0)
    period_start = models.DateTimeField(_("period it was computed for"))
    requested_at = models.DateTimeField(_("requested at"))
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    resolved_at = models.DateTimeField(_("applied or expired at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("pending update")
        verbose_name_plural = _("pending updates")
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription"],
                condition=Q(status="pending"),
                name="pending_update_one_per_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_status_display()} (subscription #{self.subscription_id})"


class SubscriptionNotice(models.Model):
    class Kind(models.TextChoices):
        TRIAL_WILL_END = "trial_will_end", _("trial will end")
        INVOICE_UPCOMING = "invoice_upcoming", _("upcoming invoice")

    subscription = models.ForeignKey(
        "billing.Subscription",
        on_delete=models.CASCADE,
        related_name="notices",
        verbose_name=_("subscription"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    # The trial end or the period end the notice is about: a new one re-arms the notice.
    about = models.DateTimeField(_("about the instant"))
    sent_at = models.DateTimeField(_("sent at"))

    class Meta:
        verbose_name = _("subscription notice")
        verbose_name_plural = _("subscription notices")
        constraints = [
            models.UniqueConstraint(fields=["subscription", "kind", "about"], name="subscription_notice_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.subscription_id} @ {self.about:%Y-%m-%d}"
