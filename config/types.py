"""Type aliases every app may import in its signatures (a leaf module: it imports no app).

The services take and return real types (models, `Money`, `int`, dataclasses); `Any` is
refused in their signatures (tests/config/test_typing.py). Two shapes have no finer type,
so they get a name here instead of a bare `Any`:

- `ActingUser`: who performs a write: a staff `User` (the console's `request.user`, the
  API key's creator through `config.api.authentication.acting_user`) or `None` for the
  system (tasks, the billing run, a webhook). Services store it in foreign keys
  (`recorded_by`, `requested_by`, `acting_user`), so an `AnonymousUser` is not one; the
  two recorders that do accept a raw `request.user` (`config.events.log.event_record`,
  `config.audit.services.audit_record`) record an anonymous user as no one.
- `JsonDict`: a JSON object as stored in a `JSONField` (event data, metadata, snapshots,
  a gateway's payload). Its values are whatever JSON holds, so `Any` stays inside.

The user model is imported only while type checking: `django.contrib.auth.models` needs
the app registry, and a leaf module must import at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ActingUser: TypeAlias = "User | None"
JsonDict: TypeAlias = dict[str, Any]
JsonMapping: TypeAlias = Mapping[str, Any]

__all__ = ["ActingUser", "JsonDict", "JsonMapping"]
