"""`manage.py db_roles setup|check|app-url`: the application runs as a role that owns nothing.

- `setup`: on the owner's connection (DATABASE_MIGRATE_URL, else DATABASE_URL), create or
  tighten the application role and grant it row access only. Idempotent; run it after
  `migrate`. `--if-postgresql` makes it a no-op on SQLite (`make run`).
- `check`: exit 1 when the application's connection (DATABASE_URL) could undo the
  database's protections (superuser, owner of a table, TRUNCATE, CREATE on the schema...).
- `app-url`: print the DATABASE_URL the application should use (the owner's URL with the
  application role's credentials when only an owner URL is configured).
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from config.ops.db_roles import app_database_url, db_roles_problems, db_roles_setup, is_postgresql, owner_alias


class Command(BaseCommand):
    help = "Set up or check the PostgreSQL roles: the owner migrates, the application owns nothing."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["setup", "check", "app-url"])
        parser.add_argument("--if-postgresql", action="store_true", help="Do nothing on another database.")

    def handle(self, *args, action: str, if_postgresql: bool, **options):
        if action == "app-url":
            self.stdout.write(app_database_url(os.environ.get("DATABASE_URL", "")))
            return
        if not is_postgresql(owner_alias()):
            if if_postgresql:
                return
            raise CommandError("Database roles are a PostgreSQL feature; DATABASE_URL is not PostgreSQL.")
        if action == "setup":
            try:
                role = db_roles_setup()
            except ValueError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(self.style.SUCCESS(f"Application role {role.name} set up: row access only."))
            return
        problems = db_roles_problems()
        for problem in problems:
            self.stderr.write(f"  {problem}")
        if problems:
            raise CommandError(  # untranslated: operators' database set-up, not finance staff
                f"The application's database role could undo the database's protections ({len(problems)} "
                "problem(s)): connect with the role `manage.py db_roles setup` creates.",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("The application's database role owns nothing and cannot truncate."))
