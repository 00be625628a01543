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


def _header(table: ReportTable, as_of: datetime | None) -> list[str]:
    return [str(column.label) for column in table.columns] + ([str(_("as of"))] if as_of else [])


def _tail(as_of: datetime | None) -> list[str]:
    return [_utc(as_of)] if as_of else []


def to_csv(table: ReportTable, *, as_of: datetime | None = None) -> bytes:
    """`as_of`: give it for figures read from the MRR summary (a last column says when)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_header(table, as_of))
    for row in table.rows:
        writer.writerow(
            ["" if (cell := file_value(column, row)) is None else cell for column in table.columns] + _tail(as_of)
        )
    # A BOM so spreadsheet programs read the accents of French headers right.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(table: ReportTable, *, title: str, as_of: datetime | None = None) -> bytes:
    from openpyxl import Workbook  # deferred: only the XLSX export needs openpyxl

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "report")
    sheet.append(_header(table, as_of))
    for row in table.rows:
        sheet.append([file_value(column, row) for column in table.columns] + _tail(as_of))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def to_json(table: ReportTable) -> dict[str, Any]:
    as_of = table.as_of
    return {
        # The instant the figures describe (UTC) and where they come from: "summary" (the MRR
        # summary's last refresh) or "live" (computed from the source rows at this request).
        "as_of": as_of.at.astimezone(UTC).isoformat().replace("+00:00", "Z") if as_of else None,
        "as_of_source": as_of.source if as_of else None,
        "next_refresh": as_of.next_refresh.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if as_of and as_of.next_refresh
        else None,
        "columns": [{"key": column.key, "label": str(column.label), "kind": column.kind} for column in table.columns],
        "rows": [{column.key: api_value(column, row) for column in table.columns} for row in table.rows],
    }
