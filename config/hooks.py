"""Named hooks: the module that owns a moment fires it, the app that reacts registers.

A hook inverts one dependency without hiding it: `billing.services.payments` fires
`payment_failed`, and dunning (which calls collection, so payments may not import it)
registers its receiver in `BillingConfig.ready()`. Receivers run synchronously, in the
caller's transaction, in registration order: a hook is a function call whose target is
known at start-up, not a queue. A `required` hook with no receiver raises instead of
silently doing nothing, so a missing registration fails loudly in every test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

Receiver = Callable[..., Any]


class Hook:
    def __init__(self, name: str, *, required: bool = False) -> None:
        self.name = name
        self.required = required
        self._receivers: list[Receiver] = []

    def __repr__(self) -> str:
        return f"Hook({self.name!r}, receivers={len(self._receivers)})"

    def connect(self, receiver: Receiver) -> Receiver:
        """Register `receiver` (once: connecting it again is a no-op); returns it, so it decorates."""
        if receiver not in self._receivers:
            self._receivers.append(receiver)
        return receiver

    def disconnect(self, receiver: Receiver) -> None:
        if receiver in self._receivers:
            self._receivers.remove(receiver)

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return tuple(self._receivers)

    def fire(self, **kwargs: Any) -> None:
        """Call every receiver with these keyword arguments."""
        if self.required and not self._receivers:
            raise ImproperlyConfigured(f"Hook {self.name!r} has no receiver: is its app's ready() registering it?")
        for receiver in self._receivers:
            receiver(**kwargs)
