"""Test databases cloned from one migrated template (PostgreSQL under pytest-xdist).

Migrating a test database costs one to two minutes (dj-stripe's two first migrations most of
it), and under `make test` every xdist worker used to migrate its own at the same time on the
same cores. Instead each worker's database is created from one migrated database with
`CREATE DATABASE ... TEMPLATE` (Django's `TEST["TEMPLATE"]` setting); Django's `migrate` then
runs on the copy as before and finds nothing to apply (or applies what is newer than the
template), so the schema, the data migrations' rows and the post-migrate rows are the ones a
migration run gives. The template is:

- `TARIF_TEST_DB_TEMPLATE` when set: a database migrated before the run that nobody is
  connected to (.ci/run copies its freshly migrated database for that);
- else `test_<name>_template`, migrated by the first worker under a file lock while the others
  wait: once per run with `--create-db`, or when it is missing.

Nothing changes with SQLite, without xdist, or when a worker's database is kept (`--reuse-db`
and it exists): Django keeps and migrates it as usual.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def is_postgresql(database: dict) -> bool:
    """PostgreSQL under any of its engines: Django's, or Tarif's subclass (config/db/postgresql),
    which the settings put in its place. Comparing with Django's name alone turned the templates
    off when the subclass came (issue 16): every worker migrated again, 2-2.5 min before its first
    test in CI."""
    from django.conf import settings

    return database["ENGINE"] in settings.POSTGRESQL_ENGINES


def prepare_template(*, run_id: str, createdb: bool) -> str | None:
    """Point the default test database at a migrated template (built if needed); its name."""
    from django.conf import settings
    from django.db import connections

    database = settings.DATABASES["default"]
    if not is_postgresql(database):
        return None
    creation = connections["default"].creation
    worker_database = creation._get_test_db_name()
    with creation._nodb_cursor() as cursor:
        if not createdb and creation._database_exists(cursor, worker_database):
            return None  # --reuse-db keeps it; Django migrates what is new
    template = os.environ.get("TARIF_TEST_DB_TEMPLATE") or _build_template(database, run_id=run_id, createdb=createdb)
    database["TEST"]["TEMPLATE"] = template
    return template


def _build_template(database: dict, *, run_id: str, createdb: bool) -> str:
    from django.db import connections

    template = f"test_{database['NAME']}_template"
    creation = connections["default"].creation
    lock_path = Path(tempfile.gettempdir()) / f"tarif-{database['HOST']}-{database['PORT']}-{template}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here while the first migrates
        with creation._nodb_cursor() as cursor:
            cursor.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [template]
            )
            row = cursor.fetchone()
            if row is not None and row[0] and (row[0] == run_id or not createdb):
                return template  # built by another worker of this run (or kept from an earlier one)
            quoted = creation._quote_name(template)
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
            cursor.execute(f"CREATE DATABASE {quoted}")
        _migrate(database, template)
        with creation._nodb_cursor() as cursor:
            # Marked built only once migrated: a worker never copies a half-migrated template.
            cursor.execute(f"COMMENT ON DATABASE {creation._quote_name(template)} IS %s", [run_id])
    return template


def _migrate(database: dict, name: str) -> None:
    """`manage.py migrate` (as Django's test database creation runs it) in a fresh process."""
    user = database["USER"] or ""
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    url = f"postgres://{user}{password}@{database['HOST']}:{database['PORT']}/{name}"
    environment = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    environment.pop("DATABASE_MIGRATE_URL", None)
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--run-syncdb", "-v", "0"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"migrating the template test database {name} failed:\n{migrated.stderr[-4000:]}")
