"""The test databases' template (tests/db_template.py) recognises PostgreSQL under every engine."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from tests.db_template import is_postgresql


def test_every_postgresql_engine_is_recognised_and_sqlite_is_not():
    assert all(is_postgresql({"ENGINE": engine}) for engine in settings.POSTGRESQL_ENGINES)
    assert not is_postgresql({"ENGINE": "django.db.backends.sqlite3"})


def test_the_engine_the_settings_configure_is_recognised_when_it_is_postgresql():
    # The settings swap Django's engine for Tarif's subclass: a check by Django's name alone
    # silently turned the templates off, and each CI worker migrated its own database again.
    assert is_postgresql(settings.DATABASES["default"]) == (connection.vendor == "postgresql")
