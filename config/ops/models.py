"""Operations bookkeeping: the durable hand-offs (collection, rendering, notifications) that
follow a commit."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Handoff(models.Model):
    """Work that must follow a commit, recorded in that commit (DESIGN: hand-offs are durable).

    The service that issues an invoice (or queues a notification) writes one row per object
    and kind in its own transaction and enqueues the Celery task in `on_commit` as a fast
    path. The task marks the row done once it has handled the object; the sweeper
    (`ops.handoffs_sweep`, every minute) re-enqueues what is still pending after a grace
    period, so a crash between the commit and the enqueue (or a lost message) delays the
    work, never loses it. The handlers are idempotent, so a double enqueue is harmless.
    """

    class Kind(models.TextChoices):
        COLLECT_INVOICE = "collect_invoice", _("collect an invoice")
        RENDER_INVOICE = "render_invoice", _("render an invoice's PDF")
        RENDER_CREDIT_NOTE = "render_credit_note", _("render a credit note's PDF")
        NOTIFICATION = "notification", _("send a customer notification")

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    object_id = models.BigIntegerField(_("object id"))
    created_at = models.DateTimeField(_("created"))
    next_attempt_at = models.DateTimeField(_("next attempt"))
    attempts = models.PositiveIntegerField(_("sweeper attempts"), default=0)
    done_at = models.DateTimeField(_("done"), null=True, blank=True)

    class Meta:
        verbose_name = _("hand-off")
        verbose_name_plural = _("hand-offs")
        constraints = [models.UniqueConstraint(fields=["kind", "object_id"], name="handoff_one_per_object")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="handoff_pending_due", condition=models.Q(done_at__isnull=True)
            ),
            models.Index(fields=["done_at"], name="handoff_done_at", condition=models.Q(done_at__isnull=False)),
        ]

    def __str__(self) -> str:
        state = f"done {self.done_at:%Y-%m-%d %H:%M:%S}" if self.done_at else f"pending ({self.attempts} sweeps)"
        return f"{self.kind} {self.object_id}: {state}"
