"""Live and test mode never mix (config/modes.py): the service-side check every write uses."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model
from django.utils.translation import gettext as _

from billing.errors import SubscriptionError
from config.modes import object_livemode


class ModeMismatch(SubscriptionError):
    """A live object and a test-mode object in one operation (e.g. a live customer, a test price)."""


def modes_check(*, livemode: bool, objects: Iterable[Model | None]) -> None:
    """Refuse when any of `objects` (None skipped) belongs to the other mode than `livemode`."""
    for obj in objects:
        if obj is None:
            continue
        if object_livemode(obj) != livemode:
            raise ModeMismatch(
                _("%(object)s belongs to %(other)s mode; this operation is in %(mode)s mode.")
                % {
                    "object": str(obj._meta.verbose_name).capitalize(),
                    "other": _("live") if not livemode else _("test"),
                    "mode": _("live") if livemode else _("test"),
                },
                code="livemode_mismatch",
            )
