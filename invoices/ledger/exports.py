"""Ledger exports (issue 19 item 5), each a generator so downloads stream with bounded memory:
rows come from a server-side cursor (`iterator(chunk_size=...)`), one at a time.

- FEC of a brand's fiscal year (invoices/ledger/fec.py writes the format);
- journal (the generic CSV journal: one row per line), trial balance, general ledger of one
  account, as CSV (";" separated, "." decimals, UTF-8 with BOM for spreadsheets) or XLSX
  (openpyxl's write-only workbook);
- Quadratus/QuadraCOMPTA ASCII ("M" records) and Sage 100 PNM (fixed-width), two import
  formats of widely used French tools, documented in docs/accounting-exports.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import DateField, QuerySet, Sum
from django.db.models.functions import Cast
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from config.money import currency_exponent
from customers.models import Customer
from invoices.ledger.fec import SEPARATORS, fec_date, fec_encode, fec_field, fec_filename, fec_format_amount
from invoices.ledger.models import Account, Journal, JournalLine, LedgerSettings
from invoices.ledger.services import ledger_entries_validate_year
from invoices.models import Brand

CHUNK = 2000

__all__ = [
    "JOURNAL_COLUMNS",
    "LedgerFilter",
    "TRIAL_BALANCE_COLUMNS",
    "csv_stream",
    "fec_export",
    "fiscal_year_bounds",
    "general_ledger_rows",
    "journal_lines",
    "journal_rows",
    "quadra_lines",
    "sage_pnm_lines",
    "trial_balance_rows",
    "xlsx_bytes",
]


@dataclass(frozen=True)
class LedgerFilter:
    """What the console's journal browser and the exports select."""

    brand: Brand
    livemode: bool
    start: date | None = None
    end: date | None = None
    journal: str = ""
    account_code: str = ""
    customer_id: int | None = None
    document: str = ""


def fiscal_year_bounds(*, brand: Brand, fiscal_year: int) -> tuple[date, date]:
    settings_row = LedgerSettings.objects.filter(brand=brand).first()
    month = settings_row.fiscal_year_start_month if settings_row else 1
    start = date(fiscal_year, month, 1)
    end = date(fiscal_year + 1, month, 1) - timedelta(days=1)
    return start, end


def journal_lines(selection: LedgerFilter) -> QuerySet[JournalLine]:
    lines = JournalLine.objects.filter(entry__brand=selection.brand, entry__livemode=selection.livemode)
    if selection.start:
        lines = lines.filter(entry__date__gte=selection.start)
    if selection.end:
        lines = lines.filter(entry__date__lte=selection.end)
    if selection.journal:
        lines = lines.filter(entry__journal=selection.journal)
    if selection.account_code:
        lines = lines.filter(account__code__startswith=selection.account_code)
    if selection.customer_id:
        lines = lines.filter(entry__customer_id=selection.customer_id)
    if selection.document:
        lines = lines.filter(entry__document_number__icontains=selection.document)
    return lines


def _snapshot_iterator(rows: QuerySet[JournalLine, tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Rows from one consistent snapshot, through a plain server-side cursor.

    Outside a transaction Django declares the cursor WITH HOLD, which makes PostgreSQL copy
    the whole result before the first row; inside one (REPEATABLE READ when this opens it)
    rows flow as they are sorted, and the file reflects a single moment of the books."""
    opened_here = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if opened_here:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET LOCAL work_mem = '64MB'")
                # Every row is read: plan for the whole result, not the first rows.
                cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        yield from rows.iterator(chunk_size=CHUNK)


def _journal_labels() -> dict[str, str]:
    with translation.override("fr"):  # the FEC is read by the French tax administration
        return {str(code): str(label).capitalize() for code, label in Journal.choices}


# Customer names of the FEC's third-party lines, read per chunk of rows rather than joined on
# every line; the cache of names (and the one of line labels) is emptied past this many
# entries, so memory stays bounded.
NAME_CACHE_LIMIT = 20_000


def _fec_lines(*, brand: Brand, livemode: bool, fiscal_year: int, separator: str) -> Iterator[str]:
    """The FEC's lines (fields joined by `separator`, no line end), formatted straight from the
    cursor's tuples: what is the same for every line of an entry, an account or a customer is
    formatted once (docs/PERFORMANCE.md "FEC export of a year")."""
    labels = _journal_labels()
    # A chart has tens of accounts: read them once rather than join them on every line.
    accounts: dict[int, str] = {}
    third_party_accounts: set[int] = set()
    for pk, code, name in Account.objects.filter(brand=brand).values_list("pk", "code", "name"):
        accounts[pk] = fec_field(code, separator) + separator + fec_field(name, separator)
        # Only third-party accounts (class 4 but VAT) carry the auxiliary account, as the tool expects.
        if code.startswith("4") and not code.startswith("445"):
            third_party_accounts.add(pk)
    rows = (
        JournalLine.objects.filter(
            entry__brand=brand, entry__livemode=livemode, entry__fiscal_year=fiscal_year, entry__number__isnull=False
        )
        # The validation day in UTC (the connection's time zone), as a plain date: no Python converter.
        .annotate(valid=Cast("entry__validated_at", DateField()))
        .order_by("valid", "entry__journal", "entry__number", "position", "pk")
        .values_list(
            "entry_id",
            "valid",
            "entry__journal",
            "entry__fiscal_year",
            "entry__number",
            "entry__date",
            "entry__document_number",
            "entry__document_date",
            "entry__source_type",
            "entry__source_id",
            "entry__currency",
            "entry__functional_currency",
            "entry__customer_id",
            "account_id",
            "customer_id",
            "label",
            "functional_debit",
            "functional_credit",
            "debit",
            "credit",
        )
    )
    names: dict[int, str] = {}  # customer id -> "C000042<sep>Legal name"
    texts: dict[str, str] = {}  # line label -> as written (a year repeats a few labels)
    current = None
    head = piece = tail_valid = currency = ""
    foreign = False
    exponent = 2
    amount = fec_format_amount
    empty_aux = separator
    iterator = _snapshot_iterator(rows)
    while batch := list(islice(iterator, CHUNK)):
        # The batch's third parties: on third-party accounts, the line's customer, else the entry's.
        batch_parties = {row[14] or row[12] for row in batch if row[13] in third_party_accounts}
        wanted = {pk for pk in batch_parties if pk and pk not in names}
        if len(texts) > NAME_CACHE_LIMIT:
            texts.clear()
        if wanted:
            if len(names) + len(wanted) > NAME_CACHE_LIMIT:
                names.clear()
                wanted = {pk for pk in batch_parties if pk}
            for pk, legal_name in Customer.objects.filter(pk__in=wanted).values_list("pk", "legal_name"):
                names[pk] = f"C{pk:06d}{separator}{fec_field(legal_name or '', separator)}"
        for (
            entry_id,
            valid,
            journal,
            year,
            number,
            day,
            document_number,
            document_date,
            source_type,
            source_id,
            entry_currency,
            functional_currency,
            entry_customer_id,
            account_id,
            customer_id,
            label,
            functional_debit,
            functional_credit,
            debit,
            credit,
        ) in batch:
            if entry_id != current:  # the first line of an entry: its fields, once
                current = entry_id
                head = separator.join(
                    (journal, labels.get(journal, journal), f"{journal}{year}-{number:07d}", fec_date(day))
                )
                piece_ref = fec_field(document_number or f"{source_type}-{source_id}", separator)
                piece = separator.join((piece_ref, fec_date(document_date or day)))
                # EcritureLet and DateLet are empty (Tarif letters by document), then ValidDate.
                tail_valid = separator.join(("", "", fec_date(max(valid, day) if valid else day)))
                foreign = entry_currency != functional_currency
                currency = entry_currency
                exponent = currency_exponent(entry_currency) if foreign else 2
            third_party_id = customer_id or entry_customer_id
            aux = names[third_party_id] if third_party_id and account_id in third_party_accounts else empty_aux
            # A line in the document currency carries its amount there (Montantdevise, Idevise); an
            # exchange difference exists only in the functional currency: both fields stay empty.
            if foreign and (debit or credit):
                devise = amount(debit - credit, exponent) + separator + currency
            else:
                devise = separator
            text = texts.get(label)
            if text is None:
                text = texts[label] = fec_field(label, separator)
            yield separator.join(
                (
                    head,
                    accounts[account_id],
                    aux,
                    piece,
                    text or accounts[account_id].partition(separator)[2],
                    amount(functional_debit) if functional_debit else "0,00",
                    amount(functional_credit) if functional_credit else "0,00",
                    tail_valid,
                    devise,
                )
            )


def fec_export(*, brand: Brand, livemode: bool, fiscal_year: int, separator: str = "\t") -> tuple[str, Iterator[bytes]]:
    """The FEC's file name and its byte chunks for one brand, mode and fiscal year."""
    if separator not in SEPARATORS:
        raise ValueError("The FEC separator is a tab or a pipe.")
    start, end = fiscal_year_bounds(brand=brand, fiscal_year=fiscal_year)
    # The FEC lists validated entries only (EcritureNum, ValidDate): the year's entries posted
    # so far are validated first (docs/accounting.md "Validation").
    ledger_entries_validate_year(brand=brand, livemode=livemode, start=start, end=end)
    name = fec_filename(siren=brand.siren, closing_date=end) if brand.siren else f"FEC{end:%Y%m%d}.txt"
    lines = _fec_lines(brand=brand, livemode=livemode, fiscal_year=fiscal_year, separator=separator)
    return name, fec_encode(lines, separator=separator)


# -- journal, trial balance, general ledger ----------------------------------------------------

JOURNAL_COLUMNS = (
    "journal",
    "entry_number",
    "date",
    "account",
    "account_name",
    "customer",
    "document",
    "label",
    "debit",
    "credit",
    "currency",
    "functional_debit",
    "functional_credit",
    "functional_currency",
    "rate",
)


def entry_reference(journal: str, year: int, number: int | None) -> str:
    """`VT2026-0000042`; empty for an entry not validated yet (it has no number)."""
    return f"{journal}{year}-{number:07d}" if number is not None else ""


def _decimal(minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}" if exponent else f"{sign}{digits}"


def journal_rows(selection: LedgerFilter) -> Iterator[tuple[str, ...]]:
    """One row per journal line, in entry order (the generic CSV journal)."""
    rows = (
        journal_lines(selection)
        .order_by("entry__date", "entry__journal", "entry__number", "position", "pk")
        .values_list(
            "entry__journal",
            "entry__fiscal_year",
            "entry__number",
            "entry__date",
            "account__code",
            "account__name",
            "entry__customer__legal_name",
            "entry__document_number",
            "label",
            "debit",
            "credit",
            "entry__currency",
            "functional_debit",
            "functional_credit",
            "entry__functional_currency",
            "entry__rate",
        )
    )
    for (
        journal,
        year,
        number,
        day,
        code,
        name,
        customer,
        document,
        label,
        debit,
        credit,
        currency,
        fdebit,
        fcredit,
        functional,
        rate,
    ) in rows.iterator(  # noqa: E501
        chunk_size=CHUNK
    ):
        yield (
            journal,
            entry_reference(journal, year, number),
            day.isoformat(),
            code,
            name,
            customer or "",
            document,
            label,
            _decimal(debit, currency),
            _decimal(credit, currency),
            currency,
            _decimal(fdebit, functional),
            _decimal(fcredit, functional),
            functional,
            str(rate.normalize()),
        )


TRIAL_BALANCE_COLUMNS = ("account", "account_name", "debit", "credit", "balance_debit", "balance_credit")


@dataclass(frozen=True)
class TrialBalanceRow:
    account_id: int
    code: str
    name: str
    debit: int
    credit: int

    @property
    def balance(self) -> int:
        return self.debit - self.credit


def trial_balance(selection: LedgerFilter) -> list[TrialBalanceRow]:
    """Per account: functional debits and credits of the selection (accounts with movements)."""
    totals = (
        journal_lines(selection)
        .values("account_id", "account__code", "account__name")
        .annotate(debit=Sum("functional_debit"), credit=Sum("functional_credit"))
        .order_by("account__code")
    )
    return [
        TrialBalanceRow(
            account_id=row["account_id"],
            code=row["account__code"],
            name=row["account__name"],
            debit=row["debit"] or 0,
            credit=row["credit"] or 0,
        )
        for row in totals
    ]


def trial_balance_rows(selection: LedgerFilter, *, currency: str) -> Iterator[tuple[str, ...]]:
    rows = trial_balance(selection)
    for row in rows:
        yield (
            row.code,
            row.name,
            _decimal(row.debit, currency),
            _decimal(row.credit, currency),
            _decimal(max(row.balance, 0), currency),
            _decimal(max(-row.balance, 0), currency),
        )
    debit = sum(row.debit for row in rows)
    credit = sum(row.credit for row in rows)
    yield ("", str(_("TOTAL")), _decimal(debit, currency), _decimal(credit, currency), "", "")


GENERAL_LEDGER_COLUMNS = ("date", "journal", "entry_number", "document", "label", "debit", "credit", "balance")


def general_ledger_rows(selection: LedgerFilter, *, account: Account, currency: str) -> Iterator[tuple[str, ...]]:
    """One account's lines with the running balance (functional currency)."""
    opening = 0
    if selection.start:
        before = JournalLine.objects.filter(
            entry__brand=selection.brand,
            entry__livemode=selection.livemode,
            account=account,
            entry__date__lt=selection.start,
        ).aggregate(debit=Sum("functional_debit"), credit=Sum("functional_credit"))
        opening = (before["debit"] or 0) - (before["credit"] or 0)
    yield ("", "", "", "", str(_("Opening balance")), "", "", _decimal(opening, currency))
    balance = opening
    rows = (
        journal_lines(selection)
        .filter(account=account)
        .order_by("entry__date", "entry__journal", "entry__number", "position", "pk")
        .values_list(
            "entry__date",
            "entry__journal",
            "entry__fiscal_year",
            "entry__number",
            "entry__document_number",
            "label",
            "functional_debit",
            "functional_credit",
        )
    )
    for day, journal, year, number, document, label, debit, credit in rows.iterator(chunk_size=CHUNK):
        balance += debit - credit
        yield (
            day.isoformat(),
            journal,
            entry_reference(journal, year, number),
            document,
            label,
            _decimal(debit, currency),
            _decimal(credit, currency),
            _decimal(balance, currency),
        )


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_stream(header: Iterable[str], rows: Iterable[Iterable[str]]) -> Iterator[bytes]:
    """UTF-8 CSV (with BOM, ";" separated: what French spreadsheets open), in chunks."""
    writer = csv.writer(_Echo(), delimiter=";")
    buffer = ["\ufeff" + writer.writerow(list(header))]
    for row in rows:
        buffer.append(writer.writerow(list(row)))
        if len(buffer) >= CHUNK:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
    if buffer:
        yield "".join(buffer).encode("utf-8")


def xlsx_bytes(*, title: str, header: Iterable[str], rows: Iterable[Iterable[str]]) -> bytes:
    """An XLSX workbook written in openpyxl's write-only mode (rows are not kept in memory)."""
    from openpyxl import Workbook  # deferred: openpyxl is heavy and only the XLSX download needs it

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append(list(header))
    for row in rows:
        sheet.append([_cell(value) for value in row])
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


def _cell(value: str) -> object:
    # Amounts as numbers so the sheet can sum them; text stays text.
    if value and "." in value and value.replace("-", "", 1).replace(".", "", 1).isdigit():
        return Decimal(value)
    return value


# -- accounting tools' import formats ----------------------------------------------------------


def _fixed(text: str, width: int, *, right: bool = False, fill: str = " ") -> str:
    text = (text or "").replace("\r", " ").replace("\n", " ")[:width]
    return text.rjust(width, fill) if right else text.ljust(width, fill)


ToolRow = tuple[str, int, date, str, int | None, str, str, int, int, str]


def _tool_rows(selection: LedgerFilter) -> Iterator[ToolRow]:
    """Validated entries only: the tools import numbered entries. The period's entries posted
    so far are validated first, as for the FEC (docs/accounting.md "Validation")."""
    end = selection.end or timezone.localdate()
    ledger_entries_validate_year(brand=selection.brand, livemode=selection.livemode, start=end, end=end)
    rows = (
        journal_lines(selection)
        .filter(entry__number__isnull=False)
        .order_by("entry__date", "entry__journal", "entry__number", "position", "pk")
        .values_list(
            "entry__journal",
            "entry__number",
            "entry__date",
            "account__code",
            "entry__customer_id",
            "entry__document_number",
            "label",
            "functional_debit",
            "functional_credit",
            "entry__functional_currency",
        )
    )
    for row in rows.iterator(chunk_size=CHUNK):
        yield cast(ToolRow, row)


def _aux(account_code: str, customer_id: int | None) -> str:
    is_customer = account_code.startswith("411") or account_code.startswith("4191")
    return f"C{customer_id:06d}" if customer_id and is_customer else ""


def quadra_lines(selection: LedgerFilter) -> Iterator[str]:
    """Quadratus/QuadraCOMPTA ASCII import: one fixed-width "M" record per line (CRLF),
    ISO 8859-15. The customer's auxiliary account replaces 411 (Quadra's collective account
    is derived from the auxiliary). Positions in docs/accounting-exports.md."""
    for journal, number, day, code, customer_id, document, label, debit, credit, currency in _tool_rows(selection):
        account = _aux(code, customer_id) or code
        sense, amount = ("D", debit) if debit else ("C", credit)
        yield (
            "M"
            + _fixed(account, 8)
            + _fixed(journal, 2)
            + "000"
            + f"{day:%d%m%y}"
            + " "
            + _fixed(label, 20)
            + sense
            + "+"
            + f"{amount:012d}"
            + _fixed("", 8)  # counterpart account
            + _fixed("", 6)  # due date
            + _fixed("", 2)  # lettering
            + _fixed("", 3)  # statistics code
            + _fixed(str(number)[-5:], 5, right=True, fill="0")
            + _fixed("", 10)  # job code
            + _fixed("", 10)  # quantity
            + _fixed(document, 8)
            + _fixed(currency, 3)
            + _fixed(journal, 3)
            + _fixed("", 3)  # VAT code and method
            + _fixed(label, 30)
            + "\r\n"
        )


def sage_pnm_lines(selection: LedgerFilter, *, dossier: str) -> Iterator[str]:
    """Sage 100 Comptabilité PNM import: a first line naming the company file, then one
    fixed-width line per journal line (CRLF, ISO 8859-15). Positions in the docs."""
    yield _fixed(dossier, 30).rstrip() + "\r\n"
    for journal, number, day, code, customer_id, document, label, debit, credit, _currency in _tool_rows(selection):
        auxiliary = _aux(code, customer_id)
        sense, amount = ("D", debit) if debit else ("C", credit)
        yield (
            _fixed(journal, 3)
            + f"{day:%d%m%y}"
            + _fixed("", 2)  # piece type
            + _fixed(code, 13)
            + ("X" if auxiliary else " ")
            + _fixed(auxiliary, 13)
            + _fixed(document, 13)
            + _fixed(label, 25)
            + " "  # payment mode
            + _fixed("", 6)  # due date
            + sense
            + _fixed(_decimal(amount, "EUR"), 20, right=True)
            + "N"
            + _fixed(str(number)[-7:], 7, right=True, fill="0")
            + _fixed("", 26)
            + "\r\n"
        )


def encode_latin9(lines: Iterable[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= CHUNK:
            yield "".join(buffer).encode("iso-8859-15", errors="replace")
            buffer.clear()
    if buffer:
        yield "".join(buffer).encode("iso-8859-15", errors="replace")


def fec_line_count(*, brand: Brand, livemode: bool, fiscal_year: int) -> int:
    return JournalLine.objects.filter(
        entry__brand=brand, entry__livemode=livemode, entry__fiscal_year=fiscal_year
    ).count()
