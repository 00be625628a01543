"""Operations bookkeeping: which domain events the outbox relay has handed to the broker."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class OutboxDelivery(models.Model):
    """One row per domain event published to the broker (at least once; consumers dedupe by event id).

    A row per event, not a "last id" cursor: events can commit out of id order (a long
    transaction holds a smaller id), and a cursor would skip them for good.
    """

    event = models.OneToOneField(
        "billing.DomainEvent",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="outbox_delivery",
        verbose_name=_("event"),
    )
    published_at = models.DateTimeField(_("published"), db_index=True)

    class Meta:
        verbose_name = _("outbox delivery")
        verbose_name_plural = _("outbox deliveries")

    def __str__(self) -> str:
        return f"event {self.event_id} published {self.published_at:%Y-%m-%d %H:%M:%S}"
