"""The flush after a transactional test, without re-running post_migrate each time.

Every transactional test (`django_db(transaction=True)`, `transactional_db`, every
`live_server` test) ends with Django's `TransactionTestCase._fixture_teardown`, which runs the
`flush` command: one TRUNCATE of every table (~200), then the `post_migrate` signal, whose
receivers re-create what a migration run leaves behind: the content types and permissions
(django.contrib.contenttypes / auth) and the role groups with their permissions (config/apps.py
-> config.roles.sync_role_groups_after_migrate): ~600 queries.

Here the flush empties the same tables in one transaction, with post_migrate inhibited, then
puts back, with one INSERT per table, the rows post_migrate leaves in those four tables
(KEPT_MODELS). On PostgreSQL its TRUNCATE names only the tables holding rows (one query finds
them), with CASCADE, instead of all of them: a TRUNCATE costs per table, empty or not.

The kept rows are read once per process: the first transactional teardown of a database runs
Django's own flush (post_migrate included) and snapshots the four tables right after it, so the
restored state is by construction the state a flush + post_migrate gives (same ids too: the
snapshot keeps them, and this flush never resets sequences). Whatever a test did to those
tables (a group, permission, content type or group link added, a role group's link removed, a
name changed) is truncated with the rest and does not reach the next test.

Cases Django handles differently are left to Django: `available_apps` (TRUNCATE ... CASCADE of
a subset, post_migrate inhibited) and `serialized_rollback`.

There is no hook for this in Django or pytest-django (pytest-django builds its test case class
inside its `_django_db_helper` fixture), so `installed()` replaces
`TransactionTestCase._fixture_teardown` for the session (tests/conftest.py), in this one place.
tests/config/test_flush.py fails when Django's `_fixture_teardown` or the flush command change,
so the replacement is checked again on a Django upgrade.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connections, transaction
from django.db.models import Model
from django.test import TransactionTestCase

# In insertion order (each row's foreign keys point to rows inserted before it).
KEPT_MODELS: tuple[type[Model], ...] = (ContentType, Permission, Group, Group.permissions.through)
ROWS_PER_INSERT = 1000  # one statement per table at today's sizes (732 permissions at most)


@dataclass(frozen=True)
class TableRows:
    table: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


# Per database alias: the four tables as a flush + post_migrate leaves them (this process).
snapshots: dict[str, tuple[TableRows, ...]] = {}
# Teardowns that went through `_fixture_teardown` below (tests/config/test_flush.py checks that
# pytest-django's teardown still reaches it).
teardowns = Counter[str]()


def kept_tables() -> tuple[str, ...]:
    return tuple(model._meta.db_table for model in KEPT_MODELS)


def read_kept_rows(*, using: str) -> tuple[TableRows, ...]:
    connection = connections[using]
    quote = connection.ops.quote_name
    read = []
    with connection.cursor() as cursor:
        for model in KEPT_MODELS:
            table = model._meta.db_table
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {quote(model._meta.pk.column)}")
            columns = tuple(column[0] for column in cursor.description)
            read.append(TableRows(table=table, columns=columns, rows=tuple(tuple(row) for row in cursor.fetchall())))
    return tuple(read)


def flush_with_post_migrate(*, using: str) -> None:
    """Django's own flush, as `TransactionTestCase._fixture_teardown` runs it by default."""
    call_command(
        "flush",
        verbosity=0,
        interactive=False,
        database=using,
        reset_sequences=False,
        allow_cascade=False,
        inhibit_post_migrate=False,
    )


def flush_keeping_migrated_rows(*, using: str, restore: bool = True) -> None:
    """Empty every Django table of `using` and put back the post_migrate rows.

    The first call for a database runs Django's flush with post_migrate and takes the snapshot.
    `restore=False` is the naive alternative kept for the negative control (tests/config/test_flush.py):
    the four tables are left out of the TRUNCATE and keep whatever the test wrote to them.
    """
    if using not in snapshots:
        flush_with_post_migrate(using=using)
        snapshots[using] = read_kept_rows(using=using)
        ContentType.objects.clear_cache()
        return
    connection = connections[using]
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    if not restore:
        tables = [table for table in tables if table not in kept_tables()]
    with transaction.atomic(using=using, savepoint=connection.features.can_rollback_ddl):
        if connection.vendor == "postgresql":
            # TRUNCATE costs per table (new files, catalog rows) even when the table is empty:
            # ~200 tables took 1.5-3 s at load 10, the few a test wrote to ~0.05 s. So only the
            # tables holding rows are named; CASCADE adds every table referencing them (PostgreSQL
            # refuses to truncate a referenced table alone). Every table ends up empty either way.
            # The four kept tables reference only one another, so CASCADE never reaches them
            # when they are left out (restore=False).
            statements = connection.ops.sql_flush(
                no_style(), tables_with_rows(using=using, tables=tables), reset_sequences=False, allow_cascade=True
            )
        else:
            statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=False, allow_cascade=False)
        connection.ops.execute_sql_flush(statements)
        if restore:
            insert_rows(using=using, tables=snapshots[using])
    # Content types are cached by id and natural key in the process; post_migrate's
    # create_contenttypes clears the cache too.
    ContentType.objects.clear_cache()


def tables_with_rows(*, using: str, tables: Sequence[str]) -> list[str]:
    """The tables among `tables` holding at least one row, in one query."""
    if not tables:
        return []
    connection = connections[using]
    quote = connection.ops.quote_name
    probe = " UNION ALL ".join(
        f"SELECT {index} WHERE EXISTS (SELECT 1 FROM {quote(table)})" for index, table in enumerate(tables)
    )
    with connection.cursor() as cursor:
        cursor.execute(probe)
        return [tables[index] for (index,) in cursor.fetchall()]


def insert_rows(*, using: str, tables: Sequence[TableRows]) -> None:
    connection = connections[using]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for kept in tables:
            columns = ", ".join(quote(column) for column in kept.columns)
            placeholder = "(" + ", ".join(["%s"] * len(kept.columns)) + ")"
            for start in range(0, len(kept.rows), ROWS_PER_INSERT):
                chunk = kept.rows[start : start + ROWS_PER_INSERT]
                values = ", ".join([placeholder] * len(chunk))
                cursor.execute(
                    f"INSERT INTO {quote(kept.table)} ({columns}) VALUES {values}",
                    [value for row in chunk for value in row],
                )


_django_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown(self: TransactionTestCase) -> None:
    if self.available_apps is not None or self.serialized_rollback:
        _django_fixture_teardown(self)  # Django's own handling (no post_migrate, or a reload)
        return
    for db_name in self._databases_names(include_mirrors=False):
        flush_keeping_migrated_rows(using=db_name)
        teardowns[db_name] += 1


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Transactional tests' teardown flushes through `flush_keeping_migrated_rows` meanwhile."""
    TransactionTestCase._fixture_teardown = _fixture_teardown  # type: ignore[method-assign]
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = _django_fixture_teardown  # type: ignore[method-assign]
