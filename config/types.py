"""Type aliases every app may import in its signatures (a leaf module: it imports no app).

The services take and return real types (models, `Money`, `int`, dataclasses); `Any` is
refused in their signatures (tests/config/test_typing.py). Two shapes have no finer type,
so they get a name here instead of a bare `Any`:

- `ActingUser`: who performs a write, as the services receive it: the console's and the
  API's `request.user` (a `User`, or `AnonymousUser` on an anonymous request), or `None`
  for the system (tasks, the billing run). The event log records an anonymous user as
  no one (`billing.events.event_record`).
- `JsonDict`: a JSON object as stored in a `JSONField` (event data, metadata, snapshots,
  a gateway's payload). Its values are whatever JSON holds, so `Any` stays inside.

The user model is imported only while type checking: `django.contrib.auth.models` needs
the app registry, and a leaf module must import at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

ActingUser: TypeAlias = "User | AnonymousUser | None"
JsonDict: TypeAlias = dict[str, Any]
JsonMapping: TypeAlias = Mapping[str, Any]

__all__ = ["ActingUser", "JsonDict", "JsonMapping"]
