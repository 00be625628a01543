"""The embedded default: SQLite in the project folder, in-process tasks, console email."""

from config.env import env
from config.settings.base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = True
# Webhooks to a receiver on this machine (http://127.0.0.1:…) while developing.
TARIF_WEBHOOK_ALLOW_LOOPBACK = env.bool("TARIF_WEBHOOK_ALLOW_LOOPBACK", default=True)
