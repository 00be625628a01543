"""The FEC (Fichier des Écritures Comptables) of article A47 A-1 of the Livre des procédures
fiscales: a writer that streams the file from entry-line rows, a reader, and `fec_check`, the
checks the DGFiP's validation tool ("Test Compta Demat") applies, which the tests use as oracle.

Choices (docs/accounting-exports.md):
- separator: tab by default (pipe on request), one header line with the 18 field names;
- encoding: ISO 8859-15 (Latin-9, listed by the text; carries "€", "œ" and every French
  accent). A character outside Latin-9 is written as its closest ASCII letter or "?";
- dates YYYYMMDD; amounts with a comma decimal separator, no thousands separator, in the
  functional currency (Debit/Credit), the document currency in Montantdevise/Idevise;
- line end CRLF; order: validation date, then journal, then entry number;
- file name `<SIREN>FEC<closing date YYYYMMDD>.txt`.

This module is a leaf: it knows rows, not models (invoices/ledger/exports.py feeds it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

__all__ = [
    "FEC_COLUMNS",
    "FEC_ENCODING",
    "FecIssue",
    "FecLine",
    "fec_bytes",
    "fec_check",
    "fec_date",
    "fec_encode",
    "fec_field",
    "fec_filename",
    "fec_format_amount",
    "fec_lines",
    "fec_read",
]

FEC_COLUMNS: tuple[str, ...] = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)
FEC_ENCODING = "iso-8859-15"
SEPARATORS = ("\t", "|")
LINE_END = "\r\n"
MANDATORY = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "ValidDate",
)
# Accounts whose lines name the third party (customers 411, suppliers 401, their advances).
AUXILIARY_PREFIXES = ("411", "401", "4191")


@dataclass(slots=True)
class FecLine:
    """One line of one entry; amounts in minor units (functional currency, two decimals).
    Not frozen: a frozen dataclass's __init__ costs twice as much, on every line of a year."""

    journal_code: str
    journal_label: str
    entry_number: str
    entry_date: date
    account_number: str
    account_label: str
    piece_ref: str
    piece_date: date
    label: str
    debit: int
    credit: int
    validation_date: date
    aux_number: str = ""
    aux_label: str = ""
    lettering: str = ""
    lettering_date: date | None = None
    foreign_amount: int | None = None
    foreign_currency: str = ""
    foreign_exponent: int = 2


@dataclass(frozen=True)
class FecIssue:
    """A failed check: `check` names it (stable, tests match on it), `line` is 1-based (header = 1)."""

    check: str
    message: str
    line: int | None = None


def fec_filename(*, siren: str, closing_date: date) -> str:
    siren = siren.replace(" ", "")
    if not re.fullmatch(r"\d{9}", siren):
        raise ValueError(f"A SIREN has nine digits, not {siren!r}.")
    return f"{siren}FEC{closing_date:%Y%m%d}.txt"


def fec_format_amount(minor: int, exponent: int = 2) -> str:
    """123456 -> "1234,56": comma decimal separator, no thousands separator, sign in front."""
    if exponent == 2 and minor >= 100:  # the common case, twice on every line: slice the digits
        digits = str(minor)
        return f"{digits[:-2]},{digits[-2:]}"
    sign = "-" if minor < 0 else ""
    if exponent == 2:
        units, cents = divmod(abs(minor), 100)
        return f"{sign}{units},{cents:02d}"
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    if exponent == 0:
        return f"{sign}{digits}"
    return f"{sign}{digits[:-exponent]},{digits[-exponent:]}"


# A field never holds the separator or a line break (the file would lose its columns).
_TAB_SAFE = str.maketrans({"\t": " ", "\r": " ", "\n": " "})
_PIPE_SAFE = str.maketrans({"\t": " ", "\r": " ", "\n": " ", "|": " "})


@lru_cache(maxsize=4096)
def fec_date(value: date | None) -> str:
    """YYYYMMDD; empty for no date. A year has a few hundred distinct dates and every line has
    three: each is formatted once."""
    return f"{value:%Y%m%d}" if value else ""


_date = fec_date


def fec_field(text: str, separator: str = "\t") -> str:
    """A text field as written: a separator, CR or LF inside becomes a space (the file would lose
    its columns), edge spaces are trimmed. Most texts need neither: they are returned as is."""
    if separator in text or "\n" in text or "\r" in text or "\t" in text:
        text = text.translate(_PIPE_SAFE if separator == "|" else _TAB_SAFE)
    elif not (text.startswith(" ") or text.endswith(" ")):
        return text
    return text.strip()


def _row(line: FecLine, separator: str) -> str:
    foreign = line.foreign_amount is not None
    fields = [
        line.journal_code,
        line.journal_label,
        line.entry_number,
        _date(line.entry_date),
        line.account_number,
        line.account_label,
        line.aux_number,
        line.aux_label,
        line.piece_ref,
        _date(line.piece_date),
        line.label,
        fec_format_amount(line.debit),
        fec_format_amount(line.credit),
        line.lettering,
        _date(line.lettering_date),
        _date(line.validation_date),
        fec_format_amount(line.foreign_amount, line.foreign_exponent) if foreign else "",  # type: ignore[arg-type]
        line.foreign_currency if foreign else "",
    ]
    text = separator.join(fields)
    # Fast path (nearly every line): no field holds a separator, a line break or edge spaces.
    if text.count(separator) == 17 and "\n" not in text and "\r" not in text and " " + separator not in text:
        if not (text.startswith(" ") or text.endswith(" ") or separator + " " in text):
            return text
    return separator.join(fec_field(field, separator) for field in fields)


def fec_lines(rows: Iterable[FecLine], *, separator: str = "\t") -> Iterator[str]:
    """The header, then one text line per row (CRLF-terminated), lazily: the caller feeds rows
    already in FEC order (validation date, journal, entry number) and holds one at a time."""
    if separator not in SEPARATORS:
        raise ValueError("The FEC separator is a tab or a pipe.")
    yield separator.join(FEC_COLUMNS) + LINE_END
    for row in rows:
        yield _row(row, separator) + LINE_END


def _latin9(text: str) -> bytes:
    try:
        return text.encode(FEC_ENCODING)
    except UnicodeEncodeError:
        folded = unicodedata.normalize("NFKD", text)
        return "".join(
            char if _encodable(char) else ("" if unicodedata.combining(char) else "?") for char in folded
        ).encode(FEC_ENCODING)


def _encodable(char: str) -> bool:
    try:
        char.encode(FEC_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def fec_bytes(rows: Iterable[FecLine], *, separator: str = "\t", chunk_lines: int = 2000) -> Iterator[bytes]:
    """The file as ISO 8859-15 byte chunks of `chunk_lines` lines (a streamed download's body)."""
    if separator not in SEPARATORS:
        raise ValueError("The FEC separator is a tab or a pipe.")
    return fec_encode((_row(row, separator) for row in rows), separator=separator, chunk_lines=chunk_lines)


def fec_encode(texts: Iterable[str], *, separator: str = "\t", chunk_lines: int = 2000) -> Iterator[bytes]:
    """The header, then `texts` (lines of 18 fields already joined by `separator`, each field
    passed through `fec_field`, no line end), as ISO 8859-15 byte chunks of `chunk_lines` lines.

    The fast path of a large export (invoices/ledger/exports.py) formats its lines itself,
    straight from the database's rows; `fec_bytes` is the same with `FecLine` rows."""
    if separator not in SEPARATORS:
        raise ValueError("The FEC separator is a tab or a pipe.")
    yield _latin9(separator.join(FEC_COLUMNS) + LINE_END)
    buffer: list[str] = []
    for text in texts:
        buffer.append(text)
        if len(buffer) >= chunk_lines:
            buffer.append("")  # the last line's CRLF
            yield _latin9(LINE_END.join(buffer))
            buffer.clear()
    if buffer:
        buffer.append("")
        yield _latin9(LINE_END.join(buffer))


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    return data.decode(FEC_ENCODING)


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _separator_of(header: str) -> str:
    return "\t" if "\t" in header else "|"


def _parse_date(value: str) -> date | None:
    if not re.fullmatch(r"\d{8}", value):
        return None
    try:
        return datetime.strptime(value, "%Y%m%d").date()  # noqa: DTZ007 - a calendar date, no time
    except ValueError:
        return None


AMOUNT = re.compile(r"-?\d+(,\d{1,6})?")


def _parse_amount(value: str) -> int | None:
    """ "1234,56" -> 123456 (cents); None when the text is no FEC amount."""
    if not AMOUNT.fullmatch(value):
        return None
    negative = value.startswith("-")
    whole, _, fraction = value.lstrip("-").partition(",")
    fraction = (fraction + "00")[:2] if len(fraction) <= 2 else fraction
    if len(fraction) > 2 and fraction[2:].strip("0"):
        return None  # more precision than cents
    cents = int(whole) * 100 + int(fraction[:2])
    return -cents if negative else cents


def fec_read(data: bytes | str) -> list[FecLine]:
    """The rows of a well-formed FEC (run `fec_check` first on a file from elsewhere)."""
    lines = _split_lines(_decode(data))
    separator = _separator_of(lines[0])
    rows = []
    for text in lines[1:]:
        cells = dict(zip(FEC_COLUMNS, text.split(separator), strict=True))
        foreign = cells["Montantdevise"]
        currency = cells["Idevise"]
        rows.append(
            FecLine(
                journal_code=cells["JournalCode"],
                journal_label=cells["JournalLib"],
                entry_number=cells["EcritureNum"],
                entry_date=_required_date(cells["EcritureDate"]),
                account_number=cells["CompteNum"],
                account_label=cells["CompteLib"],
                aux_number=cells["CompAuxNum"],
                aux_label=cells["CompAuxLib"],
                piece_ref=cells["PieceRef"],
                piece_date=_required_date(cells["PieceDate"]),
                label=cells["EcritureLib"],
                debit=_required_amount(cells["Debit"]),
                credit=_required_amount(cells["Credit"]),
                lettering=cells["EcritureLet"],
                lettering_date=_parse_date(cells["DateLet"]),
                validation_date=_required_date(cells["ValidDate"]),
                foreign_amount=_foreign_minor(foreign) if foreign else None,
                foreign_currency=currency,
                foreign_exponent=_exponent(foreign) if foreign else 2,
            )
        )
    return rows


def _required_date(value: str) -> date:
    parsed = _parse_date(value)
    if parsed is None:
        raise ValueError(f"Not a FEC date: {value!r}")
    return parsed


def _required_amount(value: str) -> int:
    parsed = _parse_amount(value)
    if parsed is None:
        raise ValueError(f"Not a FEC amount: {value!r}")
    return parsed


def _exponent(value: str) -> int:
    return len(value.partition(",")[2])


def _foreign_minor(value: str) -> int:
    return int(value.replace(",", ""))


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _wrong_encoding(data: bytes | str) -> bool:
    """Latin-9 gives a character to every byte, so a wrong encoding shows otherwise: control
    bytes (UTF-16's NULs, C1 controls) or valid multi-byte UTF-8 sequences (UTF-8 text)."""
    text = _decode(data)
    if CONTROL.search(text):
        return True
    if isinstance(data, bytes) and any(byte > 0x7F for byte in data):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return False


def _entry_sequence(number: str) -> int | None:
    digits = re.search(r"(\d+)$", number)
    return int(digits[1]) if digits else None


def fec_check(  # noqa: C901 - one pass over the file, one branch per documented check
    data: bytes | str,
    *,
    fiscal_year_start: date,
    fiscal_year_end: date,
    filename: str | None = None,
) -> list[FecIssue]:
    """Every problem the file has, in file order; an empty list means it passes.

    The checks (docs/accounting-exports.md lists them with the tool's wording): encoding,
    file name, header names and order, column count, mandatory fields, date formats,
    entry dates within the fiscal year, amounts numeric, debit xor credit, auxiliary account
    on 411/401 lines, foreign amount with its currency, lettering with its date, one date per
    entry, lines of an entry together, order by validation date, entry balanced, numbering
    continuous per journal, totals balanced.
    """
    issues: list[FecIssue] = []
    if filename is not None and not re.fullmatch(r"\d{9}FEC\d{8}\.txt", filename):
        issues.append(FecIssue("filename", f"The file name {filename!r} is not <SIREN>FEC<YYYYMMDD>.txt."))
    elif filename is not None and _parse_date(filename[12:20]) != fiscal_year_end:
        issues.append(FecIssue("filename", "The date in the file name is not the fiscal year's closing date."))
    if _wrong_encoding(data):
        return [*issues, FecIssue("encoding", f"The file is not encoded in {FEC_ENCODING}.")]
    text = _decode(data)
    lines = _split_lines(text)
    if not lines:
        return [*issues, FecIssue("header", "The file is empty.")]
    separator = _separator_of(lines[0])
    header = lines[0].split(separator)
    if tuple(header) != FEC_COLUMNS:
        return [*issues, FecIssue("header", "The header does not name the 18 fields in the order of A47 A-1.", 1)]

    entry_totals: dict[tuple[str, str], list[int]] = {}
    entry_dates: dict[tuple[str, str], date] = {}
    journal_numbers: dict[str, list[int]] = {}
    finished: set[tuple[str, str]] = set()
    current: tuple[str, str] | None = None
    last_valid: date | None = None
    total_debit = total_credit = 0

    for index, text_line in enumerate(lines[1:], start=2):
        cells = text_line.split(separator)
        if len(cells) != len(FEC_COLUMNS):
            issues.append(FecIssue("columns", f"Line has {len(cells)} fields instead of 18.", index))
            continue
        row = dict(zip(FEC_COLUMNS, cells, strict=True))
        for name in MANDATORY:
            if not row[name].strip():
                issues.append(FecIssue("mandatory", f"{name} is empty.", index))
        dates: dict[str, date | None] = {}
        for name in ("EcritureDate", "PieceDate", "ValidDate", "DateLet"):
            if name == "DateLet" and not row[name]:
                continue
            dates[name] = _parse_date(row[name])
            if row[name] and dates[name] is None:
                issues.append(FecIssue("date_format", f"{name} {row[name]!r} is not a YYYYMMDD date.", index))
        entry_date = dates.get("EcritureDate")
        if entry_date and not fiscal_year_start <= entry_date <= fiscal_year_end:
            issues.append(
                FecIssue("fiscal_year", f"EcritureDate {row['EcritureDate']} is outside the fiscal year.", index)
            )
        debit = _parse_amount(row["Debit"])
        credit = _parse_amount(row["Credit"])
        if debit is None or credit is None:
            issues.append(
                FecIssue("amount_format", "Debit and Credit must be numbers with a comma decimal separator.", index)
            )
            debit, credit = debit or 0, credit or 0
        elif (debit != 0) == (credit != 0):
            issues.append(FecIssue("debit_xor_credit", "A line carries either a debit or a credit.", index))
        if debit < 0 or credit < 0:
            issues.append(FecIssue("amount_sign", "Debit and Credit are not negative.", index))
        if row["CompteNum"].startswith(AUXILIARY_PREFIXES) and not (row["CompAuxNum"] and row["CompAuxLib"]):
            issues.append(FecIssue("auxiliary", f"Account {row['CompteNum']} needs CompAuxNum and CompAuxLib.", index))
        if bool(row["CompAuxNum"]) != bool(row["CompAuxLib"]):
            issues.append(FecIssue("auxiliary", "CompAuxNum and CompAuxLib go together.", index))
        if bool(row["Montantdevise"]) != bool(row["Idevise"]):
            issues.append(FecIssue("currency", "Montantdevise and Idevise go together.", index))
        elif row["Idevise"] and not re.fullmatch(r"[A-Z]{3}", row["Idevise"]):
            issues.append(FecIssue("currency", f"Idevise {row['Idevise']!r} is not an ISO 4217 code.", index))
        elif row["Montantdevise"] and not AMOUNT.fullmatch(row["Montantdevise"]):
            issues.append(FecIssue("amount_format", "Montantdevise is not a number.", index))
        if row["DateLet"] and not row["EcritureLet"]:
            issues.append(FecIssue("lettering", "DateLet without EcritureLet.", index))

        key = (row["JournalCode"], row["EcritureNum"])
        if key != current:
            if key in finished:
                issues.append(
                    FecIssue("entry_split", f"Entry {key[1]} of journal {key[0]} is not in one block.", index)
                )
            if current is not None:
                finished.add(current)
            current = key
            sequence = _entry_sequence(row["EcritureNum"])
            if sequence is None:
                issues.append(
                    FecIssue("numbering", f"EcritureNum {row['EcritureNum']!r} has no sequence number.", index)
                )
            else:
                journal_numbers.setdefault(row["JournalCode"], []).append(sequence)
            entry_dates[key] = entry_date or fiscal_year_start
        elif entry_date and entry_dates.get(key) != entry_date:
            issues.append(FecIssue("entry_date", f"Entry {key[1]} of journal {key[0]} has two dates.", index))
        valid = dates.get("ValidDate")
        if valid and last_valid and valid < last_valid:
            issues.append(FecIssue("order", "Lines are not in validation date order.", index))
        if valid:
            last_valid = max(valid, last_valid) if last_valid else valid
        totals = entry_totals.setdefault(key, [0, 0])
        totals[0] += debit
        totals[1] += credit
        total_debit += debit
        total_credit += credit

    for (journal, number), (debit, credit) in entry_totals.items():
        if debit != credit:
            issues.append(
                FecIssue(
                    "entry_balance",
                    f"Entry {number} of journal {journal} is not balanced: "
                    f"debit {fec_format_amount(debit)} != credit {fec_format_amount(credit)}.",
                )
            )
    for journal, numbers in journal_numbers.items():
        expected = list(range(numbers[0], numbers[0] + len(numbers))) if numbers else []
        if numbers != expected:
            gap = next(n for n, e in zip(numbers, expected, strict=True) if n != e)
            issues.append(FecIssue("numbering", f"Journal {journal}: numbering breaks at {gap} (not continuous)."))
    if total_debit != total_credit:
        issues.append(
            FecIssue(
                "total_balance",
                f"Total debit {fec_format_amount(total_debit)} != total credit {fec_format_amount(total_credit)}.",
            )
        )
    return issues
