from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests run tasks in-process unless a test explicitly talks to the real broker.
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = BASE_DIR / "var" / "test-media"  # noqa: F405
LANGUAGE_CODE = "en"
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Every transaction's locks are checked against the one lock order (config/locking.py).
TARIF_LOCK_ORDER_CHECKS = True
TARIF_WEBHOOK_ALLOW_LOOPBACK = True  # webhook tests deliver to receivers on 127.0.0.1
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # Django empties the tables between transactional tests with TRUNCATE, which the
    # immutable tables refuse (invoices migration 0007) unless the session allows it.
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c tarif.allow_truncate=on".strip()
