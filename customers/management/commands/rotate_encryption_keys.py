"""Re-encrypt every encrypted column with the newest key of TARIF_ENCRYPTION_KEYS.

Rotation: put the new key first in TARIF_ENCRYPTION_KEYS (keep the old ones after it),
deploy, run this command, then drop the old keys. Rows already encrypted with the newest
key are skipped, so the command is idempotent and can resume after an interruption.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from tqdm import tqdm

from config.audit.services import audit_record
from customers.fields import PREFIX, EncryptedTextField, rotate

BATCH = 500


def encrypted_columns() -> list[tuple[type, EncryptedTextField]]:
    """Every (model, field) stored encrypted, in every app: fields added later are covered."""
    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField) and not model._meta.proxy
    ]


class Command(BaseCommand):
    help = "Re-encrypt encrypted columns with the newest key (TARIF_ENCRYPTION_KEYS[0])."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted.")

    def handle(self, *args, dry_run: bool, **options):
        newest = Fernet(settings.TARIF_ENCRYPTION_KEYS[0].encode())
        totals = {"rotated": 0, "current": 0}
        for model, field in encrypted_columns():
            table = connection.ops.quote_name(model._meta.db_table)
            column = connection.ops.quote_name(field.column)
            pk = connection.ops.quote_name(model._meta.pk.column)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} <> '' ORDER BY {pk}")  # noqa: S608
                rows = cursor.fetchall()
            label = f"{model._meta.label}.{field.name}"
            for start in tqdm(range(0, len(rows), BATCH), desc=label, unit="batch", disable=not rows):
                self._rotate_batch(rows[start : start + BATCH], newest, table, column, pk, totals, dry_run)
        if not dry_run:
            audit_record(actor=None, action="encryption.rotate", channel="system", extra=totals)
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} {totals['rotated']} value(s); {totals['current']} already on the newest key.")
        )

    def _rotate_batch(self, rows, newest, table, column, pk, totals, dry_run) -> None:
        with transaction.atomic():
            for row_id, stored in rows:
                if not stored.startswith(PREFIX):
                    raise CommandError(
                        f"{table} row {row_id}: {column} holds an unencrypted value."
                    )  # untranslated: operators' key rotation, not finance staff
                try:
                    newest.decrypt(stored[len(PREFIX) :].encode())
                    totals["current"] += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    rotated = rotate(stored)
                except InvalidToken as error:
                    raise CommandError(
                        f"{table} row {row_id}: no key in TARIF_ENCRYPTION_KEYS decrypts it."
                    ) from error  # untranslated: operators' key rotation, not finance staff
                totals["rotated"] += 1
                if dry_run:
                    continue
                with connection.cursor() as cursor:
                    # compare-and-set: a value rewritten meanwhile by the application is left alone
                    cursor.execute(
                        f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",  # noqa: S608
                        [rotated, row_id, stored],
                    )
