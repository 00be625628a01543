"""Ledger exports prepared in the background, with progress (the console's Exports page).

`ledger_export_request` writes the `LedgerExport` row (the durable hand-off) and asks a
worker to run it; `ledger_export_run` claims a pending row once (a conditional UPDATE, so a
duplicate delivery or the sweeper's re-send does nothing), writes the file to storage in
chunks while advancing `rows_done`, then marks it ready or failed. `ledger_exports_sweep`
re-sends rows left pending (a lost message) and fails rows stuck running (a dead worker).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from config import clock
from config.jobs import enqueue
from invoices.ledger import exports
from invoices.ledger.errors import LedgerError
from invoices.ledger.models import Account, LedgerExport
from invoices.models import Brand

EXPORT_TASK = "ledger.export_run"
PROGRESS_EVERY = 10_000
STUCK_AFTER = timedelta(hours=2)
RESEND_AFTER = timedelta(minutes=5)


class ExportRefused(LedgerError):
    code = "ledger_export_refused"
    http_status = 422


def ledger_export_request(
    *,
    brand: Brand,
    livemode: bool,
    kind: str,
    start: date,
    end: date,
    fiscal_year: int | None = None,
    account_code: str = "",
    requested_by: AbstractBaseUser | None = None,
) -> LedgerExport:
    if kind not in LedgerExport.Kind.values:
        raise ExportRefused(_("Unknown export format."))
    if kind == LedgerExport.Kind.FEC:
        if fiscal_year is None:
            raise ExportRefused(_("The FEC covers one fiscal year: choose it."))
        start, end = exports.fiscal_year_bounds(brand=brand, fiscal_year=fiscal_year)
    if end < start:
        raise ExportRefused(_("The end date is before the start date."))
    if (
        kind == LedgerExport.Kind.GENERAL_LEDGER_CSV
        and not Account.objects.filter(brand=brand, code=account_code).exists()
    ):
        raise ExportRefused(_("Choose an account of this brand's chart for the general ledger."))
    with transaction.atomic(durable=True):
        export = LedgerExport.objects.create(
            brand=brand,
            livemode=livemode,
            kind=kind,
            start=start,
            end=end,
            fiscal_year=fiscal_year,
            account_code=account_code,
            requested_by=requested_by,  # type: ignore[misc]  # the project's user model
            created_at=clock.system_now(),
        )
    # After the commit: the row is the hand-off; if this message is lost the sweeper re-sends it.
    enqueue(EXPORT_TASK, kwargs={"export_id": export.pk})
    return export


def _selection(export: LedgerExport) -> exports.LedgerFilter:
    return exports.LedgerFilter(brand=export.brand, livemode=export.livemode, start=export.start, end=export.end)


def _content(export: LedgerExport) -> tuple[str, Iterator[bytes] | bytes]:
    """File name and content (byte chunks, or bytes for XLSX) of the export."""
    selection = _selection(export)
    currency = getattr(getattr(export.brand, "ledger_settings", None), "functional_currency", "EUR")
    stamp = f"{export.start:%Y%m%d}-{export.end:%Y%m%d}"
    kind = LedgerExport.Kind
    if export.kind == kind.FEC:
        return exports.fec_export(brand=export.brand, livemode=export.livemode, fiscal_year=export.fiscal_year or 0)
    if export.kind == kind.JOURNAL_CSV:
        return f"journal-{stamp}.csv", exports.csv_stream(exports.JOURNAL_COLUMNS, exports.journal_rows(selection))
    if export.kind == kind.JOURNAL_XLSX:
        return f"journal-{stamp}.xlsx", exports.xlsx_bytes(
            title="Journal", header=exports.JOURNAL_COLUMNS, rows=exports.journal_rows(selection)
        )
    if export.kind == kind.TRIAL_BALANCE_CSV:
        return f"trial-balance-{stamp}.csv", exports.csv_stream(
            exports.TRIAL_BALANCE_COLUMNS, exports.trial_balance_rows(selection, currency=currency)
        )
    if export.kind == kind.TRIAL_BALANCE_XLSX:
        return f"trial-balance-{stamp}.xlsx", exports.xlsx_bytes(
            title="Trial balance",
            header=exports.TRIAL_BALANCE_COLUMNS,
            rows=exports.trial_balance_rows(selection, currency=currency),
        )
    if export.kind == kind.GENERAL_LEDGER_CSV:
        account = Account.objects.get(brand=export.brand, code=export.account_code)
        return f"general-ledger-{account.code}-{stamp}.csv", exports.csv_stream(
            exports.GENERAL_LEDGER_COLUMNS, exports.general_ledger_rows(selection, account=account, currency=currency)
        )
    if export.kind == kind.QUADRA:
        return f"quadra-{stamp}.txt", exports.encode_latin9(exports.quadra_lines(selection))
    return f"sage-{stamp}.pnm", exports.encode_latin9(exports.sage_pnm_lines(selection, dossier=export.brand.name))


def _row_count(export: LedgerExport) -> int:
    if export.kind == LedgerExport.Kind.FEC:
        return exports.fec_line_count(brand=export.brand, livemode=export.livemode, fiscal_year=export.fiscal_year or 0)
    lines = exports.journal_lines(_selection(export))
    if export.kind == LedgerExport.Kind.GENERAL_LEDGER_CSV:
        lines = lines.filter(account__code=export.account_code)
    return lines.count()


def ledger_export_run(*, export_id: int) -> LedgerExport | None:
    """Run one export if it is still pending; None when another run has it (or had it)."""
    now = clock.system_now()
    claimed = LedgerExport.objects.filter(pk=export_id, status=LedgerExport.Status.PENDING).update(
        status=LedgerExport.Status.RUNNING, started_at=now
    )
    if not claimed:
        return None
    export = LedgerExport.objects.select_related("brand").get(pk=export_id)
    try:
        total = _row_count(export)
        LedgerExport.objects.filter(pk=export.pk).update(rows_total=total)
        name, content = _content(export)
        with tempfile.TemporaryFile() as spool:
            if isinstance(content, bytes):
                spool.write(content)
                done = total
            else:
                done = 0
                written_since = 0
                for chunk in content:
                    spool.write(chunk)
                    lines = chunk.count(b"\n")
                    done += lines
                    written_since += lines
                    if written_since >= PROGRESS_EVERY:
                        written_since = 0
                        LedgerExport.objects.filter(pk=export.pk).update(rows_done=min(done, total))
            spool.seek(0)
            export.file.save(f"{export.pk}/{name}", File(spool), save=False)
        LedgerExport.objects.filter(pk=export.pk).update(
            status=LedgerExport.Status.DONE,
            file=export.file.name,
            filename=name,
            rows_done=F("rows_total"),
            finished_at=clock.system_now(),
        )
    except (LedgerError, OSError, ValueError) as error:
        LedgerExport.objects.filter(pk=export.pk).update(
            status=LedgerExport.Status.FAILED, error=str(error)[:2000], finished_at=clock.system_now()
        )
    export.refresh_from_db()
    return export


def ledger_exports_sweep() -> int:
    """Re-send pending exports whose message may be lost; fail the ones stuck running."""
    now = clock.system_now()
    LedgerExport.objects.filter(status=LedgerExport.Status.RUNNING, started_at__lt=now - STUCK_AFTER).update(
        status=LedgerExport.Status.FAILED,
        error=_("The export stopped (worker lost); request it again."),
        finished_at=now,
    )
    pending = list(
        LedgerExport.objects.filter(status=LedgerExport.Status.PENDING, created_at__lt=now - RESEND_AFTER).values_list(
            "pk", flat=True
        )[:100]
    )
    for export_id in pending:
        enqueue(EXPORT_TASK, kwargs={"export_id": export_id})
    return len(pending)
