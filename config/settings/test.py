import os
import re

# `make test` spreads the suite over pytest-xdist workers (gw0, gw1, ...). pytest-django gives
# each its own test database; here each also gets its own Redis databases (a Celery worker a test
# starts must never take another test process's tasks) and its own media directory. Set before
# the base settings read the environment, and in os.environ, which the tests that start Celery
# workers pass on.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER.startswith("gw"):
    _worker_number = int(_XDIST_WORKER[2:])
    for _variable, _offset in (("CELERY_BROKER_URL", 2), ("CELERY_RESULT_BACKEND", 3)):
        _url = os.environ.get(_variable, "")
        if _url.startswith("redis://"):
            os.environ[_variable] = re.sub(r"/\d*$", "", _url) + f"/{_offset + 2 * _worker_number}"

from config.settings.base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests run tasks in-process unless a test explicitly talks to the real broker.
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = BASE_DIR / "var" / "test-media" / (_XDIST_WORKER or "main")  # noqa: F405
LANGUAGE_CODE = "en"
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Every transaction's locks are checked against the one lock order (config/locking.py).
TARIF_LOCK_ORDER_CHECKS = True
TARIF_WEBHOOK_ALLOW_LOOPBACK = True  # webhook tests deliver to receivers on 127.0.0.1
if DATABASES["default"]["ENGINE"] in POSTGRESQL_ENGINES:  # noqa: F405
    # Django empties the tables between transactional tests with TRUNCATE, which the
    # immutable tables refuse (invoices migration 0007) unless the session allows it.
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c tarif.allow_truncate=on".strip()
# Issue 20: with DATABASE_REPLICA_URL set, only the tests that ask for it (marked `replica`) read
# from the replica: the rest of the suite writes and reads back at once, in one transaction or not.
TARIF_REPLICA_ENABLED = False
