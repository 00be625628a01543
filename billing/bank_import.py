"""Bank statements through django-import-export: the two file formats and the line resource.

The formats read a file into a tablib Dataset of credit lines (billing/bank_statements.py
does the reading and refuses a malformed file before anything is written); the
resource stores the lines, skipping those whose fingerprint is already known, and
matches each new line as it is saved. import-export runs the whole file in one
transaction: the dry run (the preview the console shows) rolls back, the confirmed
import commits, and a row error rolls everything back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tablib
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.formats.base_formats import Format

from billing.bank_statements import ParsedStatement, StatementFormatError, line_fingerprints, parse_camt053, parse_csv
from billing.models import BankStatement, BankStatementLine
from billing.services.reconciliation import bank_line_match
from config import clock
from config.errors import DomainError
from config.events.log import event_record
from config.locking import lock_order_exempt
from config.types import ActingUser

STATEMENT_COLUMNS = (
    "statement_account",
    "statement_id",
    "period_start",
    "period_end",
    "source_format",
    "file_checksum",
)
LINE_COLUMNS = (
    "sequence",
    "fingerprint",
    "entry_reference",
    "booking_date",
    "value_date",
    "amount",
    "currency",
    "debtor_name",
    "remittance_info",
)


def statement_dataset(parsed: ParsedStatement) -> tablib.Dataset:
    """The statement as import-export rows: one per credit line, the statement's data repeated."""
    dataset = tablib.Dataset(headers=[*STATEMENT_COLUMNS, *LINE_COLUMNS])
    header = (
        parsed.account,
        parsed.statement_id,
        parsed.period_start.isoformat() if parsed.period_start else "",
        parsed.period_end.isoformat() if parsed.period_end else "",
        parsed.source_format,
        parsed.checksum,
    )
    fingerprints = line_fingerprints(account=parsed.account, lines=parsed.lines)
    for sequence, (line, fingerprint) in enumerate(zip(parsed.lines, fingerprints, strict=True), start=1):
        dataset.append(
            (
                *header,
                sequence,
                fingerprint,
                line.entry_reference,
                line.booking_date.isoformat(),
                line.value_date.isoformat() if line.value_date else "",
                line.amount,
                line.currency,
                line.debtor_name,
                line.remittance_info,
            )
        )
    return dataset


class StatementFormat(Format):
    """A bank statement file; binary, so Tarif decodes it (UTF-8 or Windows-1252) itself."""

    title = ""
    extension = ""
    content_type = "application/octet-stream"

    def __init__(self, encoding: str | None = None) -> None:
        self.encoding = encoding

    def get_title(self) -> str:
        return self.title

    def get_extension(self) -> str:
        return self.extension

    def get_content_type(self) -> str:
        return self.content_type

    def can_import(self) -> bool:
        return True

    def parse(self, data: bytes) -> ParsedStatement:
        raise NotImplementedError

    def create_dataset(self, in_stream: Any, **kwargs: Any) -> tablib.Dataset:
        data = in_stream.encode() if isinstance(in_stream, str) else bytes(in_stream)
        return statement_dataset(self.parse(data))


class BankStatementCSV(StatementFormat):
    title = "csv (bank statement)"
    extension = "csv"
    content_type = "text/csv"

    def parse(self, data: bytes) -> ParsedStatement:
        return parse_csv(data)


class Camt053(StatementFormat):
    title = "xml (CAMT.053)"
    extension = "xml"
    content_type = "application/xml"

    def parse(self, data: bytes) -> ParsedStatement:
        return parse_camt053(data)


STATEMENT_FORMATS: dict[str, type[StatementFormat]] = {"csv": BankStatementCSV, "camt053": Camt053}


class BankStatementLineResource(resources.ModelResource):
    """Stores a statement's credit lines once, and matches each new one.

    Columns come from the formats above (never from a hand-made spreadsheet): the
    statement columns find or create the `BankStatement`, the line columns fill the line.
    `status` is read-only: the preview shows what matching would do.
    """

    fingerprint = fields.Field(attribute="fingerprint", column_name="fingerprint")
    sequence = fields.Field(attribute="sequence", column_name="sequence", widget=widgets.IntegerWidget())
    booking_date = fields.Field(
        attribute="booking_date", column_name="booking_date", widget=widgets.DateWidget(format="%Y-%m-%d")
    )
    value_date = fields.Field(
        attribute="value_date", column_name="value_date", widget=widgets.DateWidget(format="%Y-%m-%d")
    )
    amount = fields.Field(attribute="amount", column_name="amount", widget=widgets.IntegerWidget())
    currency = fields.Field(attribute="currency", column_name="currency")
    debtor_name = fields.Field(attribute="debtor_name", column_name="debtor_name")
    remittance_info = fields.Field(attribute="remittance_info", column_name="remittance_info")
    entry_reference = fields.Field(attribute="entry_reference", column_name="entry_reference")
    status = fields.Field(attribute="status", column_name="status", readonly=True)
    status_reason = fields.Field(attribute="status_reason", column_name="reason", readonly=True)

    class Meta:
        model = BankStatementLine
        name = _("Bank statement")
        import_id_fields = ("fingerprint",)
        fields = (
            "sequence",
            "booking_date",
            "value_date",
            "amount",
            "currency",
            "debtor_name",
            "remittance_info",
            "entry_reference",
            "fingerprint",
            "status",
            "status_reason",
        )
        use_transactions = True
        skip_unchanged = False
        report_skipped = True
        # The console's preview and the match screen read each row's line (amount, status).
        store_instance = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.statements: dict[tuple[str, str], BankStatement] = {}
        self.acting_user: Any = None
        self.new_lines = 0
        self.created_statements: list[BankStatement] = []

    def before_import(self, dataset: tablib.Dataset, **kwargs: Any) -> None:
        missing = [column for column in (*STATEMENT_COLUMNS, *LINE_COLUMNS) if column not in (dataset.headers or [])]
        if missing:
            raise StatementFormatError(
                _("Not a statement read by Tarif's formats (missing %(columns)s).") % {"columns": ", ".join(missing)}
            )
        self.acting_user = kwargs.get("user")
        user = self.acting_user if getattr(self.acting_user, "is_authenticated", False) else None
        # Statements first, in a fixed order: a concurrent import of the same statement
        # waits here on the unique (account, statement id) until the first one commits,
        # then finds its lines already there and skips them.
        keys = sorted({(row["statement_account"], row["statement_id"]): row for row in dataset.dict}.items())
        for (account, statement_id), row in keys:
            statement, created = BankStatement.objects.get_or_create(
                account=account,
                statement_id=statement_id,
                defaults={
                    "period_start": row["period_start"] or None,
                    "period_end": row["period_end"] or None,
                    "source_format": row["source_format"],
                    "file_name": (kwargs.get("file_name") or "")[:255],
                    "file_checksum": row["file_checksum"],
                    "imported_by": user,
                    "imported_at": clock.system_now(),
                },
            )
            self.statements[(account, statement_id)] = statement
            if created:
                self.created_statements.append(statement)

    def skip_row(self, instance: BankStatementLine, original: BankStatementLine, row: Any, *args: Any) -> bool:
        return original.pk is not None  # already imported (this statement, or an overlapping one)

    def before_save_instance(self, instance: BankStatementLine, row: Any, **kwargs: Any) -> None:
        instance.statement = self.statements[(row["statement_account"], row["statement_id"])]

    def after_save_instance(self, instance: BankStatementLine, row: Any, **kwargs: Any) -> None:
        self.new_lines += 1
        # Known exception to the lock order (docs/billing.md): the whole file is matched in
        # the import's one transaction, so a line's subscription, customer and invoices are
        # locked after the previous line's.
        with lock_order_exempt("statement import matches every line in one transaction"):
            matched = bank_line_match(line=instance, acting_user=self.acting_user)
        for name in ("status", "status_reason", "customer_id", "amount_credited"):
            setattr(instance, name, getattr(matched, name))

    def after_import(self, dataset: tablib.Dataset, result: Any, **kwargs: Any) -> None:
        if kwargs.get("dry_run"):
            return
        for statement in self.created_statements:
            if not statement.lines.exists():
                # An overlapping statement whose every line was already imported: nothing new to keep.
                self.statements.pop((statement.account, statement.statement_id), None)
                statement.delete()
        if not self.new_lines:
            return

        for statement in self.statements.values():
            event_record(
                type="bank_statement.imported",
                object_type="bank_statement",
                object_id=statement.pk,
                customer_id=None,
                occurred_at=clock.system_now(),
                data={
                    "account": statement.account,
                    "statement_id": statement.statement_id,
                    "lines": statement.lines.count(),
                    "new_lines": self.new_lines,
                    "checksum": statement.file_checksum,
                },
                acting_user=self.acting_user,
            )


# -- the same import for scripts and the command -------------------------------


class StatementImportError(DomainError):
    """A statement file that was refused; nothing of it was imported."""

    code = "statement_refused"
    http_status = 400


@dataclass(frozen=True, slots=True)
class ImportSummary:
    statements: list[BankStatement]
    new_lines: int
    skipped_lines: int


def bank_statement_import(
    *, data: bytes, source_format: str, file_name: str = "", acting_user: ActingUser = None
) -> ImportSummary:
    """Import a statement file (`csv` or `camt053`) as the console's import does, in one transaction.

    The same django-import-export resource stores the lines: already known lines are
    skipped, new ones matched. A malformed file raises StatementImportError and imports
    nothing. For scripts and the `import_bank_statement` command.
    """
    if source_format not in STATEMENT_FORMATS:
        raise StatementImportError(
            gettext("Unknown statement format %(format)s: use csv or camt053.") % {"format": source_format}
        )
    try:
        dataset = STATEMENT_FORMATS[source_format]().create_dataset(data)
    except StatementFormatError as error:
        raise StatementImportError(str(error)) from error
    resource = BankStatementLineResource()
    result = resource.import_data(
        dataset, dry_run=False, raise_errors=False, use_transactions=True, file_name=file_name, user=acting_user
    )
    if result.has_errors() or result.has_validation_errors():
        messages = [str(error.error) for error in result.base_errors]
        messages += [str(error.error) for _, errors in result.row_errors() for error in errors]
        messages += [str(row.error) for row in result.invalid_rows]
        raise StatementImportError("; ".join(messages[:5]) or gettext("The statement could not be imported."))
    return ImportSummary(
        statements=list(resource.statements.values()),
        new_lines=result.totals.get("new", 0),
        skipped_lines=result.totals.get("skip", 0),
    )
