"""Django's PostgreSQL backend with a bypass window for the connection health check.

With `CONN_HEALTH_CHECKS`, Django checks a persistent connection (`SELECT 1`, one round trip)
before the first query of every request, however busy the connection is: on the entitlements
check that is one of its three round trips (issue 16). HikariCP's `aliveBypassWindowMs` (500 ms
by default) answers the same question the same way: a connection that worked a moment ago is not
checked again. Here a connection that served a request without a database error less than
`TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS` ago (0.5 s by default; 0 checks every request, Django's
behaviour) skips the check; an idle connection is still checked before use.

What is traded: a connection that breaks inside the window (the server restarted or failed over
in that half second) fails one request instead of being replaced before it, and Django closes it
at the end of that request (`errors_occurred`), so the next request reconnects.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.healthy_at: float | None = None  # time.monotonic() when a request last used it without error

    def connect(self) -> None:
        self.healthy_at = None
        super().connect()

    def close_if_unusable_or_obsolete(self) -> None:
        # Called when a request (or a Celery task) starts and ends. At the end, `health_check_done`
        # says the request used the connection (the check ran or was bypassed at its first query)
        # and `errors_occurred` whether a database error happened since.
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self.healthy_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and self.healthy_at is not None
            and time.monotonic() - self.healthy_at < settings.TARIF_DB_HEALTH_CHECK_BYPASS_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
