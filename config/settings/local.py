"""The embedded default: SQLite in the project folder, in-process tasks, console email."""

from config.env import env
from config.settings.base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = True
