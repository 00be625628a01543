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
TARIF_WEBHOOK_ALLOW_LOOPBACK = True  # webhook tests deliver to receivers on 127.0.0.1
