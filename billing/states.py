"""Subscription status machine: the one table of allowed transitions.

Services that change a subscription's status lock the row, then call
`assert_transition`; nothing else writes `Subscription.status`.
"""

from __future__ import annotations

from typing import Final

from billing.models import Subscription
from config.errors import DomainConflict

Status = Subscription.Status


class InvalidTransition(DomainConflict):
    """A status change the subscription state machine does not allow."""

    code = "invalid_transition"

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"A subscription cannot go from '{current}' to '{target}'.")
        self.current = current
        self.target = target


ALLOWED_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    # created, first invoice not paid yet (payment needs action)
    Status.INCOMPLETE: frozenset({Status.ACTIVE, Status.TRIALING, Status.CANCELED}),
    Status.TRIALING: frozenset({Status.ACTIVE, Status.PAST_DUE, Status.PAUSED, Status.CANCELED, Status.INCOMPLETE}),
    # active -> trialing: a trial added to a running subscription (PATCH trial_end, issue 16)
    Status.ACTIVE: frozenset({Status.PAST_DUE, Status.PAUSED, Status.CANCELED, Status.UNPAID, Status.TRIALING}),
    Status.PAST_DUE: frozenset({Status.ACTIVE, Status.UNPAID, Status.CANCELED, Status.PAUSED}),
    Status.UNPAID: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.CANCELED: frozenset(),  # terminal: a new subscription is created instead
}

# Statuses whose subscriptions the billing run renews at period end.
BILLABLE_STATUSES: Final = frozenset({Status.ACTIVE, Status.TRIALING, Status.PAST_DUE, Status.UNPAID})


def can_transition(current: str, target: str) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def assert_transition(current: str, target: str) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current, target)
