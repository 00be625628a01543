"""Exchange rates in, for the ledger's functional-currency amounts (issue 19 item 7).

Two ECB formats: the CSV of `eurofxref-hist.zip`/`eurofxref.zip` (a `Date` column, then one
column per currency, "N/A" when a currency has no rate that day) and the XML of
`eurofxref-daily.xml`/`eurofxref-hist.xml` (`<Cube time=...><Cube currency= rate=/>`).
Both quote one euro in each currency, which is what `ExchangeRate` stores (base EUR).
A URL the user configures (TARIF_EXCHANGE_RATES_URL) must serve one of these formats.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from django.db import transaction
from django.utils.translation import gettext as _

from invoices.ledger.errors import LedgerError
from invoices.ledger.models import ExchangeRate

ECB_BASE = "EUR"
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024


class ExchangeRateFileInvalid(LedgerError):
    code = "exchange_rate_file_invalid"
    http_status = 422


@dataclass(frozen=True)
class RateRow:
    currency: str
    on: date
    rate: Decimal


@dataclass(frozen=True)
class RatesImported:
    created: int
    updated: int
    first_day: date | None
    last_day: date | None


def _day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ExchangeRateFileInvalid(
            _("%(where)s: %(value)r is not a date (YYYY-MM-DD).") % {"where": where, "value": text}
        ) from None


def _rate(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ExchangeRateFileInvalid(
            _("%(where)s: %(value)r is not a rate.") % {"where": where, "value": text}
        ) from None
    if not value.is_finite() or value <= 0:
        raise ExchangeRateFileInvalid(_("%(where)s: a rate is positive.") % {"where": where})
    return value


def _currency(text: str, where: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ExchangeRateFileInvalid(
            _("%(where)s: %(value)r is not a currency code.") % {"where": where, "value": text}
        )
    return code


def parse_ecb_csv(text: str) -> Iterator[RateRow]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header or header[0].strip() != "Date":
        raise ExchangeRateFileInvalid(_('Line 1: an ECB CSV file starts with a "Date" column.'))
    currencies = [(_currency(name, "Line 1") if name.strip() else "") for name in header[1:]]
    if not any(currencies):
        raise ExchangeRateFileInvalid(_("Line 1: no currency column."))
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        where = _("Line %(number)d") % {"number": number}
        on = _day(cells[0], where)
        for currency, cell in zip(currencies, cells[1:], strict=False):
            if currency and cell.strip() and cell.strip() != "N/A":
                yield RateRow(currency=currency, on=on, rate=_rate(cell, where))


def parse_ecb_xml(data: bytes) -> Iterator[RateRow]:
    try:
        root = SafeET.fromstring(data)
    except (SafeET.ParseError, DefusedXmlException) as error:
        raise ExchangeRateFileInvalid(_("Not a well-formed XML file: %(error)s") % {"error": error}) from None
    days = [element for element in root.iter() if element.tag.endswith("Cube") and "time" in element.attrib]
    if not days:
        raise ExchangeRateFileInvalid(_('No <Cube time="..."> element: not an ECB rates file.'))
    for day in days:
        on = _day(day.attrib["time"], day.attrib["time"])
        for cube in day:
            if "currency" in cube.attrib:
                where = f"{on.isoformat()} {cube.attrib['currency']}"
                yield RateRow(
                    currency=_currency(cube.attrib["currency"], where),
                    on=on,
                    rate=_rate(cube.attrib.get("rate", ""), where),
                )


def parse_rates(*, data: bytes, name: str) -> list[RateRow]:
    """The rows of an ECB file, by its name (.xml or .csv) or, failing that, its first byte."""
    stripped = data.lstrip()
    if name.lower().endswith(".xml") or stripped.startswith(b"<"):
        return list(parse_ecb_xml(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExchangeRateFileInvalid(_("The CSV file is not UTF-8 text.")) from None
    return list(parse_ecb_csv(text))


def exchange_rates_import(*, rows: Iterable[RateRow], source: str) -> RatesImported:
    """Insert or update one EUR rate per currency and day (a re-import changes nothing twice)."""
    by_key = {(row.currency, row.on): row for row in rows if row.currency != ECB_BASE}
    if not by_key:
        raise ExchangeRateFileInvalid(_("The file holds no exchange rate."))
    with transaction.atomic(durable=True):
        existing = {
            (currency, on): rate
            for currency, on, rate in ExchangeRate.objects.filter(
                base=ECB_BASE,
                currency__in={currency for currency, _ in by_key},
                date__range=(min(on for _, on in by_key), max(on for _, on in by_key)),
            ).values_list("currency", "date", "rate")
        }
        created = [key for key in by_key if key not in existing]
        changed = [key for key in by_key if key in existing and existing[key] != by_key[key].rate]
        ExchangeRate.objects.bulk_create(
            [
                ExchangeRate(base=ECB_BASE, currency=row.currency, date=row.on, rate=row.rate, source=source[:50])
                for key, row in by_key.items()
                if key in created or key in changed
            ],
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["base", "currency", "date"],
            update_fields=["rate", "source"],
        )
    days = [on for _, on in by_key]
    return RatesImported(created=len(created), updated=len(changed), first_day=min(days), last_day=max(days))
