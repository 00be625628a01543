"""Report tables as CSV, XLSX (openpyxl) and JSON-ready values.

Files hold amounts in major units (29.00 for 2900 cents of EUR) next to their currency
column and rates as fractions (0.25); the API keeps integer minor units like the rest
of the API, and rates as decimal strings. Files of the reports that read the MRR summary
end each row with an "as of" column: the instant (UTC) the figures describe, so a file
opened days later still says how current it was.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.utils.translation import gettext as _

from config.money import Money
from reports.registry import DATETIME, DECIMAL, DURATION, MONEY, MONTH, RATE, Column, ReportTable

RATE_PLACES = Decimal("0.0001")


def _rate(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(RATE_PLACES)


def file_value(column: Column, row: dict[str, Any]) -> Any:
    """The value as a spreadsheet should hold it (numbers stay numbers)."""
    value = row.get(column.key)
    if value is None:
        return None
    if column.kind == MONEY:
        currency = row.get("currency")
        return Money(int(value), currency).decimal if currency else int(value)
    if column.kind == RATE:
        return _rate(value)
    if column.kind == MONTH:
        return f"{value:%Y-%m}"
    if column.kind == DATETIME:
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if column.kind == DURATION:
        return (Decimal(value.total_seconds()) / 86400).quantize(Decimal("0.01"))
    if column.kind == DECIMAL:
        return value if isinstance(value, Decimal) else _rate(value) if isinstance(value, Fraction) else value
    return value


def api_value(column: Column, row: dict[str, Any]) -> Any:
    """The value as JSON: money in integer minor units, rates and decimals as strings."""
    value = row.get(column.key)
    if value is None:
        return None
    if column.kind == MONEY:
        return int(value)
    if column.kind in (RATE, DECIMAL):
        return str(_rate(value) if isinstance(value, Fraction) else value)
    if column.kind == MONTH:
        return f"{value:%Y-%m}"
    if column.kind == DATETIME or isinstance(value, date):
        return value.isoformat()
    if column.kind == DURATION and isinstance(value, timedelta):
        return int(value.total_seconds())
    return value


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _header(columns: Iterable[Column], as_of: datetime | None) -> list[str]:
    return [str(column.label) for column in columns] + ([str(_("as of"))] if as_of else [])


def _tail(as_of: datetime | None) -> list[str]:
    return [_utc(as_of)] if as_of else []


def _file_columns_and_rows(table: ReportTable) -> tuple[tuple[Column, ...], Iterable[dict[str, Any]]]:
    """A digest page's file holds its full list (streamed), any other report its rows."""
    if table.full_list is not None:
        return table.full_list.columns, table.full_list.stream()
    return table.columns, table.rows


def csv_chunks(table: ReportTable, *, as_of: datetime | None = None, rows_per_chunk: int = 1_000) -> Iterator[bytes]:
    """The CSV file in pieces of `rows_per_chunk` rows (a StreamingHttpResponse's content):
    a report of a million rows never sits in memory whole."""
    columns, rows = _file_columns_and_rows(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # A BOM so spreadsheet programs read the accents of French headers right.
    buffer.write("\ufeff")
    writer.writerow(_header(columns, as_of))
    for count, row in enumerate(rows, start=1):
        writer.writerow(
            ["" if (cell := file_value(column, row)) is None else cell for column in columns] + _tail(as_of)
        )
        if count % rows_per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def to_csv(table: ReportTable, *, as_of: datetime | None = None) -> bytes:
    """`as_of`: give it for figures read from the MRR summary (a last column says when)."""
    return b"".join(csv_chunks(table, as_of=as_of))


def to_xlsx(table: ReportTable, *, title: str, as_of: datetime | None = None) -> bytes:
    from openpyxl import Workbook  # deferred: only the XLSX export needs openpyxl

    columns, rows = _file_columns_and_rows(table)
    # write_only: openpyxl streams the rows to a temporary file, not a tree of cells in memory.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "report")
    sheet.append(_header(columns, as_of))
    for row in rows:
        sheet.append([file_value(column, row) for column in columns] + _tail(as_of))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def to_json(table: ReportTable, *, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`rows`: a page of the table's full list (then its columns) instead of the table's rows."""
    as_of = table.as_of
    columns = table.full_list.columns if rows is not None and table.full_list is not None else table.columns
    return {
        # The instant the figures describe (UTC) and where they come from: "summary" (the MRR
        # summary's last refresh) or "live" (computed from the source rows at this request).
        "as_of": as_of.at.astimezone(UTC).isoformat().replace("+00:00", "Z") if as_of else None,
        "as_of_source": as_of.source if as_of else None,
        "next_refresh": as_of.next_refresh.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if as_of and as_of.next_refresh
        else None,
        "columns": [{"key": column.key, "label": str(column.label), "kind": column.kind} for column in columns],
        "rows": [
            {column.key: api_value(column, row) for column in columns} for row in (table.rows if rows is None else rows)
        ],
    }
