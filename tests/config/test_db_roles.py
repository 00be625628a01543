"""`manage.py db_roles app-url`: the URL the application serves with when only the owner's is configured."""

from __future__ import annotations

from config.ops.db_roles import DEFAULT_APP_ROLE, app_database_url, app_role


def test_an_owner_only_postgres_url_becomes_the_application_roles():
    # given only an owner URL (DATABASE_URL, no DATABASE_MIGRATE_URL)
    owner = "postgres://postgres:secret@127.0.0.1:5432/tarif?sslmode=prefer"

    # when the application's URL is derived from it
    url = app_database_url(owner)

    # then it connects to the same database as tarif_app, never as the owner
    role = app_role()
    assert url == f"postgres://{DEFAULT_APP_ROLE}:{role.password}@127.0.0.1:5432/tarif?sslmode=prefer"
    assert "postgres:secret" not in url
    assert len(role.password) == 32


def test_sqlite_and_empty_urls_are_left_alone():
    assert app_database_url("sqlite:///db.sqlite3") == "sqlite:///db.sqlite3"
    assert app_database_url("") == ""
