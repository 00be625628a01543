"""Two PostgreSQL roles: the owner runs migrations, the application runs as a role that owns nothing.

The owner (DATABASE_MIGRATE_URL, or DATABASE_URL when only that is set) owns every table
and runs `manage.py migrate`. The application role (DATABASE_URL when DATABASE_MIGRATE_URL
is set, else `tarif_app`) may CONNECT, use the schema, SELECT/INSERT/UPDATE/DELETE rows and
draw sequence values, and nothing else: it is no superuser, owns nothing, has no TRUNCATE,
REFERENCES or TRIGGER privilege and no REPLICATION, so it cannot `SET session_replication_role`,
disable or drop a trigger, TRUNCATE a table or change the schema. The database's own
triggers then hold against it (issued documents frozen, audit log append-only).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import connections

from config.management.commands.migrate import MIGRATOR

DEFAULT_APP_ROLE = "tarif_app"
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"


@dataclass(frozen=True)
class AppRole:
    name: str
    password: str


def owner_alias() -> str:
    return MIGRATOR if MIGRATOR in settings.DATABASES else "default"


def is_postgresql(alias: str = "default") -> bool:
    return connections[alias].vendor == "postgresql"


def _derived_password() -> str:
    # For a role made from an owner-only DATABASE_URL (development, `make run`): stable, not guessable.
    return hmac.new(settings.SECRET_KEY.encode(), b"tarif.db-app-role.v1", hashlib.sha256).hexdigest()[:32]


def app_role() -> AppRole:
    """The application role: DATABASE_URL's user when migrations have their own URL, else `tarif_app`."""
    if MIGRATOR in settings.DATABASES:
        default = settings.DATABASES["default"]
        return AppRole(name=default["USER"], password=default.get("PASSWORD") or "")
    return AppRole(name=DEFAULT_APP_ROLE, password=_derived_password())


def app_database_url(url: str) -> str:
    """`url` (the owner's) with the application role's credentials instead."""
    if MIGRATOR in settings.DATABASES or not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return url
    role = app_role()
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(role.name, safe='')}:{quote(role.password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def setup_statements(*, database: str, owner: str, role: AppRole) -> list[tuple[str, list[object]]]:
    """Idempotent SQL that creates (or tightens) the application role and grants what it needs."""
    from psycopg import sql  # deferred: PostgreSQL only (the embedded default runs on SQLite)

    app, owner_id, db = sql.Identifier(role.name), sql.Identifier(owner), sql.Identifier(database)
    attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT")
    create = sql.SQL(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN CREATE ROLE {app}; END IF; END $$"
    ).format(name=sql.Literal(role.name), app=app)
    statements = [
        create,
        sql.SQL("ALTER ROLE {app} {attributes} PASSWORD {password}").format(
            app=app, attributes=attributes, password=sql.Literal(role.password or None)
        ),
        sql.SQL("GRANT CONNECT ON DATABASE {db} TO {app}").format(db=db, app=app),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {app}").format(app=app),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {app}").format(app=app),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {app}").format(app=app),
        sql.SQL("GRANT " + TABLE_PRIVILEGES + " ON ALL TABLES IN SCHEMA public TO {app}").format(app=app),
        sql.SQL("GRANT " + SEQUENCE_PRIVILEGES + " ON ALL SEQUENCES IN SCHEMA public TO {app}").format(app=app),
        # Tables and sequences the owner creates later (new migrations) are granted the same way.
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT "
            + TABLE_PRIVILEGES
            + " ON TABLES TO {app}"
        ).format(owner=owner_id, app=app),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT "
            + SEQUENCE_PRIVILEGES
            + " ON SEQUENCES TO {app}"
        ).format(owner=owner_id, app=app),
    ]
    return [(statement, []) for statement in statements]


def db_roles_setup(*, role: AppRole | None = None) -> AppRole:
    """Create or tighten the application role on the owner's connection. Safe to run again."""
    alias = owner_alias()
    role = role or app_role()
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_user")
        database, owner = cursor.fetchone()
        if role.name == owner:
            raise ValueError(
                f"The application role {role.name!r} is the owner: give DATABASE_URL another user than "
                "DATABASE_MIGRATE_URL (or set only DATABASE_URL and let `tarif_app` be created)."
            )
        for statement, params in setup_statements(database=database, owner=owner, role=role):
            cursor.execute(statement.as_string(cursor.connection), params or None)
    return role


def db_roles_problems(alias: str = "default") -> list[str]:
    """What the role of `alias` could do that the application role must not (empty: nothing)."""
    with connections[alias].cursor() as cursor:
        return role_problems(cursor)


def role_problems(cursor: Any) -> list[str]:
    """`db_roles_problems` on any DB-API cursor (a plain psycopg connection's, in tests)."""
    problems = []
    cursor.execute(
        "SELECT rolname, rolsuper, rolreplication, rolbypassrls, rolcreaterole, rolcreatedb "
        "FROM pg_roles WHERE rolname = current_user"
    )
    name, superuser, replication, bypassrls, createrole, createdb = cursor.fetchone()
    for flag, label in (
        (superuser, "is a superuser"),
        (replication, "has REPLICATION"),
        (bypassrls, "has BYPASSRLS"),
        (createrole, "has CREATEROLE"),
        (createdb, "has CREATEDB"),
    ):
        if flag:
            problems.append(f"role {name} {label}")
    cursor.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
    )
    owned = cursor.fetchone()[0]
    if owned:
        problems.append(f"role {name} owns {owned} relation(s) in schema public (it could disable their triggers)")
    cursor.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
        "AND (has_table_privilege(current_user, format('%I.%I', schemaname, tablename), 'TRUNCATE') "
        "OR has_table_privilege(current_user, format('%I.%I', schemaname, tablename), 'TRIGGER'))"
    )
    truncatable = cursor.fetchone()[0]
    if truncatable:
        problems.append(f"role {name} may TRUNCATE or add triggers to {truncatable} table(s)")
    cursor.execute("SELECT has_schema_privilege(current_user, 'public', 'CREATE')")
    if cursor.fetchone()[0]:
        problems.append(f"role {name} may create objects in schema public")
    return problems
