"""`manage.py migrate`, run as the tables' owner when one is configured.

The application's own role (DATABASE_URL) owns nothing and cannot change the schema; with
DATABASE_MIGRATE_URL set, migrations default to the `migrator` alias (the owner role).
`--database` still picks another alias explicitly.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.commands.migrate import Command as MigrateCommand

MIGRATOR = "migrator"


class Command(MigrateCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        if MIGRATOR in settings.DATABASES:
            parser.set_defaults(database=MIGRATOR)
