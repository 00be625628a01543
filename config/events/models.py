"""The event log's tables. They were created by the billing app and keep their names
(`billing_domainevent`, `billing_eventcursor`): the move to this app was state-only."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from config.modes import default_livemode


class DomainEvent(models.Model):
    """The event log and outbox: one row per state change, written in the same transaction."""

    type = models.CharField(_("type"), max_length=80, db_index=True)
    object_type = models.CharField(_("object type"), max_length=40)
    object_id = models.CharField(_("object id"), max_length=40)
    customer = models.ForeignKey(
        "customers.Customer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("customer"),
    )
    data = models.JSONField(_("data"), default=dict)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("acting user")
    )
    occurred_at = models.DateTimeField(_("occurred at"))
    livemode = models.BooleanField(
        _("live mode"),
        default=default_livemode,
        editable=False,
        db_index=True,
        help_text=_("False for test-mode (sandbox) data."),
    )
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)

    class Meta:
        db_table = "billing_domainevent"
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="billing_dom_custome_b877b0_idx"),
            models.Index(fields=["object_type", "object_id"], name="billing_dom_object__650728_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.object_type}:{self.object_id}"


class EventCursor(models.Model):
    """How far one consumer of the domain event log has read (events with a larger pk are
    new), and which ids below that it has not seen yet (`gaps`: ids taken by transactions
    that had not committed when the cursor passed them). One row per consumer, moved under
    its lock by `config.events.consumers.events_consume`."""

    name = models.CharField(_("consumer"), max_length=60, unique=True)
    last_event_id = models.BigIntegerField(_("last event read"), default=0)
    gaps = models.JSONField(
        _("ids not seen yet"),
        default=list,
        blank=True,
        help_text=_("Ranges [first, last, seen at] of ids below the cursor that were not visible when it passed."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "billing_eventcursor"
        verbose_name = _("event cursor")
        verbose_name_plural = _("event cursors")

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_event_id}"
