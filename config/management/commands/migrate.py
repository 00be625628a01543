"""`manage.py migrate`, run as the tables' owner when one is configured.

The application's own role (DATABASE_URL) owns nothing and cannot change the schema; with
DATABASE_MIGRATE_URL set (the `migrator` alias), migrations run as that owner. Data
migrations and Django's post-migrate handlers that do not pass `using` write through the
`default` alias, so for the duration of the command `default` connects as the owner too.
`--database` still picks another alias explicitly.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import connections

MIGRATOR = "migrator"
_CREDENTIALS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")


class Command(MigrateCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        if MIGRATOR in settings.DATABASES:
            parser.set_defaults(database=MIGRATOR)

    def handle(self, *args, **options):
        if options["database"] == MIGRATOR:
            owner = connections[MIGRATOR].settings_dict
            default = connections["default"]
            default.close()
            default.settings_dict.update({key: owner[key] for key in _CREDENTIALS})
            options["database"] = "default"
        return super().handle(*args, **options)
