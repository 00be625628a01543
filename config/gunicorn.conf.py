"""gunicorn's settings for Tarif's web processes: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Environment: `GUNICORN_BIND` (default 127.0.0.1:8000), `WEB_CONCURRENCY` (sync workers, default
2 x cores + 1). Command-line options override these (bench/api_load.py sets bind and workers).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
keepalive = 5
# A worker is replaced after this many requests (jittered so they do not all restart at once).
max_requests = 20_000
max_requests_jitter = 2_000


def post_worker_init(worker: Any) -> None:
    """The application's import-time objects (models, URL patterns, catalogues) live as long as the
    worker: freeze them out of the garbage collector's generations, so a full collection during a
    request does not walk them (the API's tail latency, bench/entitlements.py)."""
    gc.collect()
    gc.freeze()
