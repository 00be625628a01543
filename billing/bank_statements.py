"""Reading bank statements: CSV exports and ISO 20022 CAMT.053 XML (docs/payments.md).

Both readers turn a file into a `ParsedStatement` of credit lines, or raise
`StatementFormatError` with a message an operator can act on (which line, which
column, what was expected). Nothing here touches the database: the import
(billing/bank_import.py) stores what the readers return, in one transaction.

No maintained PyPI parser for CAMT.053 fits the stack (the ones found pin half a web
framework or are early 0.0.x releases), so CAMT is read with lxml, entities and network
access disabled, by namespace: the elements Tarif reads are the same in every version of
camt.053.001 from .02 to .13, only their namespace and a few wrappers (`Sts/Cd`,
`RltdPties/Dbtr/Pty`) differ.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils.translation import gettext as _
from lxml import etree

from config.errors import DomainError
from config.money import AmountError, CurrencyError, Money, validate_currency

CAMT053_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})$")
# Versions whose layout Tarif reads (the elements used below exist unchanged in all of them).
CAMT053_VERSIONS = range(2, 14)


class StatementFormatError(DomainError, ValueError):
    """A statement file Tarif cannot read; the message says where and why."""

    code = "statement_format"
    http_status = 400


@dataclass(frozen=True, slots=True)
class ParsedLine:
    booking_date: date
    value_date: date | None
    amount: int  # minor units, > 0 (credits only)
    currency: str
    debtor_name: str
    remittance_info: str
    entry_reference: str


@dataclass(slots=True)
class ParsedStatement:
    account: str
    statement_id: str
    period_start: date | None
    period_end: date | None
    source_format: str
    checksum: str
    lines: list[ParsedLine] = field(default_factory=list)


def file_checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def account_label(raw: str) -> str:
    """What Tarif keeps of an account: an IBAN's last 4 characters, or another account id as is."""
    compact = re.sub(r"\s", "", raw or "").upper()
    if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return f"IBAN-{compact[-4:]}"
    return compact[:64]


def line_fingerprints(*, account: str, lines: list[ParsedLine]) -> list[str]:
    """One stable fingerprint per line (see BankStatementLine).

    With the bank's entry reference: account + reference. Without: account, booking
    date, amount, currency, remittance text, and how many identical lines came before in
    this statement, so two genuinely identical transfers on one day stay two lines while
    the same transfer in an overlapping statement gets the same fingerprint.
    """
    seen: Counter[tuple] = Counter()
    fingerprints = []
    for line in lines:
        if line.entry_reference:
            key = f"ref|{account}|{line.entry_reference}"
        else:
            remittance = " ".join(line.remittance_info.upper().split())
            identity = (line.booking_date.isoformat(), line.amount, line.currency, remittance)
            occurrence = seen[identity]
            seen[identity] += 1
            key = "hash|" + "|".join([account, *map(str, identity), str(occurrence)])
        fingerprints.append(hashlib.sha256(key.encode()).hexdigest())
    return fingerprints


def to_minor_units(text: str, currency: str) -> int:
    """'1 234,56' or '1,234.56' or '1234.56' (major units) -> 123456; raises StatementFormatError.

    Money.from_major reads it (config.money.parse_major, with no locale: a file says
    nothing of its writer's): when both '.' and ',' appear, the last one is the decimal
    separator; a lone one is a decimal separator (French exports write a decimal comma).
    Spaces, non-breaking spaces and apostrophes group thousands. More decimals than the
    currency has is an error, never a rounding.
    """
    try:
        return Money.from_major(text or "", currency, minimum=None).amount
    except AmountError as error:
        raise StatementFormatError(error.message_text()) from error


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y", "%Y%m%d")


def parse_date(text: str) -> date:
    raw = (text or "").strip()
    if "T" in raw:  # an ISO date-time (CAMT's DtTm): the date part is the booking day
        raw = raw.split("T", 1)[0]
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, pattern).date()  # noqa: DTZ007 - a calendar date, no time
        except ValueError:
            continue
    raise StatementFormatError(_("'%(value)s' is not a date (write 2026-03-31 or 31/03/2026).") % {"value": text or ""})


def _currency(text: str) -> str:
    try:
        return validate_currency((text or "").strip())
    except CurrencyError as error:
        raise StatementFormatError(_("'%(value)s' is not a known currency.") % {"value": text or ""}) from error


# --- CSV ---------------------------------------------------------------------------------

# Column names Tarif accepts (lower-cased, accents kept), English first then French ones.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "booking_date": ("booking_date", "date", "date comptable", "date d'opération", "date operation"),
    "value_date": ("value_date", "date de valeur", "date valeur"),
    "amount": ("amount", "montant", "crédit", "credit"),
    "currency": ("currency", "devise"),
    "debtor_name": ("debtor_name", "debtor", "payeur", "émetteur", "emetteur", "nom"),
    "remittance_info": ("remittance_info", "reference", "remittance", "libellé", "libelle", "motif", "référence"),
    "entry_reference": ("entry_reference", "bank_reference", "référence banque", "reference banque", "id opération"),
    "account": ("account", "iban", "compte"),
    "statement_id": ("statement_id", "relevé", "releve"),
}
CSV_REQUIRED = ("booking_date", "amount", "currency", "remittance_info")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def parse_csv(data: bytes) -> ParsedStatement:
    """A CSV export: a header row, `;` or `,` (or tab) separated, UTF-8 or Windows-1252.

    Only credits (positive amounts) are kept: debits are not payments from customers.
    """
    if b"\x00" in data[:4096]:
        raise StatementFormatError(_("This is not a text (CSV) file."))
    text = _decode(data)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise StatementFormatError(_("The file is empty: a CSV statement starts with a header row."))
    header_line = lines[0]
    delimiter = max((";", "\t", ","), key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise StatementFormatError(_("The header row has one column: separate columns with ';' or ','."))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [cell.strip().lower() for cell in next(reader)]
    positions: dict[str, int] = {}
    for name, aliases in CSV_COLUMNS.items():
        for index, cell in enumerate(header):
            if cell in aliases:
                positions.setdefault(name, index)
    missing = [name for name in CSV_REQUIRED if name not in positions]
    if missing:
        raise StatementFormatError(
            _("Missing column(s): %(columns)s. Expected at least: %(required)s.")
            % {"columns": ", ".join(missing), "required": ", ".join(CSV_REQUIRED)}
        )

    def cell(row: list[str], name: str) -> str:
        index = positions.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    parsed_lines: list[ParsedLine] = []
    accounts: set[str] = set()
    statement_ids: set[str] = set()
    for number, row in enumerate(reader, start=2):
        if not any(value.strip() for value in row):
            continue
        if len(row) < len(header):
            raise StatementFormatError(
                _("Line %(line)s has %(found)s columns; the header has %(expected)s.")
                % {"line": number, "found": len(row), "expected": len(header)}
            )
        try:
            currency = _currency(cell(row, "currency"))
            amount = to_minor_units(cell(row, "amount"), currency)
            booking_date = parse_date(cell(row, "booking_date"))
            value_text = cell(row, "value_date")
            value_date = parse_date(value_text) if value_text else None
        except StatementFormatError as error:
            raise StatementFormatError(_("Line %(line)s: %(error)s") % {"line": number, "error": error}) from error
        if cell(row, "account"):
            accounts.add(account_label(cell(row, "account")))
        if cell(row, "statement_id"):
            statement_ids.add(cell(row, "statement_id"))
        if amount <= 0:
            continue  # a debit (or a zero line): not money received
        parsed_lines.append(
            ParsedLine(
                booking_date=booking_date,
                value_date=value_date,
                amount=amount,
                currency=currency,
                debtor_name=cell(row, "debtor_name")[:200],
                remittance_info=cell(row, "remittance_info"),
                entry_reference=cell(row, "entry_reference")[:100],
            )
        )
    if len(accounts) > 1 or len(statement_ids) > 1:
        raise StatementFormatError(_("A CSV file holds one statement of one account: import them one by one."))
    checksum = file_checksum(data)
    dates = [line.booking_date for line in parsed_lines]
    return ParsedStatement(
        account=accounts.pop() if accounts else "csv",
        # Without a statement id column, the file itself identifies the statement.
        statement_id=statement_ids.pop() if statement_ids else f"csv-{checksum[:16]}",
        period_start=min(dates) if dates else None,
        period_end=max(dates) if dates else None,
        source_format="csv",
        checksum=checksum,
        lines=parsed_lines,
    )


# --- CAMT.053 ----------------------------------------------------------------------------


class _Camt:
    """Namespaced look-ups in one camt.053 document."""

    def __init__(self, namespace: str) -> None:
        self.ns = {"c": namespace}

    def find(self, element, path: str):
        return element.find(self._path(path), self.ns) if element is not None else None

    def findall(self, element, path: str) -> list:
        return element.findall(self._path(path), self.ns) if element is not None else []

    def text(self, element, path: str) -> str:
        found = self.find(element, path)
        return (found.text or "").strip() if found is not None else ""

    def first_text(self, element, *paths: str) -> str:
        for path in paths:
            value = self.text(element, path)
            if value:
                return value
        return ""

    @staticmethod
    def _path(path: str) -> str:
        return "/".join(f"c:{step}" if step not in (".", "..") else step for step in path.split("/"))


def parse_camt053(data: bytes) -> ParsedStatement:
    """An ISO 20022 BankToCustomerStatement (camt.053.001.02 to .13): booked credit entries.

    One line per transaction: an entry that batches several transfers (several TxDtls
    with their own amounts) gives one line per transfer.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise StatementFormatError(_("This is not a well-formed XML file: %(error)s") % {"error": error}) from error
    namespace = etree.QName(root).namespace or ""
    match = CAMT053_NAMESPACE.match(namespace)
    if match is None or etree.QName(root).localname != "Document":
        raise StatementFormatError(
            _("This XML file is not a CAMT.053 bank statement (its namespace is '%(namespace)s').")
            % {"namespace": namespace or "none"}
        )
    if int(match.group(1)) not in CAMT053_VERSIONS:
        raise StatementFormatError(
            _("CAMT.053 version %(version)s is not supported.") % {"version": f"001.{match.group(1)}"}
        )
    camt = _Camt(namespace)
    statements = camt.findall(root, "BkToCstmrStmt/Stmt")
    if not statements:
        raise StatementFormatError(_("The CAMT.053 file holds no statement (no BkToCstmrStmt/Stmt element)."))
    if len(statements) > 1:
        raise StatementFormatError(
            _("The file holds %(count)s statements: import one statement (one account) per file.")
            % {"count": len(statements)}
        )
    statement = statements[0]
    statement_id = camt.text(statement, "Id")
    account_raw = camt.first_text(statement, "Acct/Id/IBAN", "Acct/Id/Othr/Id")
    if not statement_id or not account_raw:
        raise StatementFormatError(_("The statement has no Id or no account (Acct/Id)."))
    period = camt.find(statement, "FrToDt")
    try:
        period_start = parse_date(camt.text(period, "FrDtTm")) if camt.text(period, "FrDtTm") else None
        period_end = parse_date(camt.text(period, "ToDtTm")) if camt.text(period, "ToDtTm") else None
    except StatementFormatError as error:
        raise StatementFormatError(_("Statement period: %(error)s") % {"error": error}) from error

    lines: list[ParsedLine] = []
    for index, entry in enumerate(camt.findall(statement, "Ntry"), start=1):
        try:
            lines.extend(_camt_entry_lines(camt, entry))
        except StatementFormatError as error:
            raise StatementFormatError(_("Entry %(index)s: %(error)s") % {"index": index, "error": error}) from error
    return ParsedStatement(
        account=account_label(account_raw),
        statement_id=statement_id[:100],
        period_start=period_start,
        period_end=period_end,
        source_format="camt053",
        checksum=file_checksum(data),
        lines=lines,
    )


def _camt_amount(camt: _Camt, element, path: str) -> tuple[int, str] | None:
    node = camt.find(element, path)
    if node is None:
        return None
    currency = _currency(node.get("Ccy", ""))
    text = (node.text or "").strip()
    if not re.fullmatch(r"\d+(\.\d+)?", text):  # xs:decimal, as the schema says: no comma, no sign
        raise StatementFormatError(_("'%(value)s' is not an amount.") % {"value": text})
    return to_minor_units(text, currency), currency


def _camt_entry_lines(camt: _Camt, entry) -> list[ParsedLine]:
    indicator = camt.text(entry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise StatementFormatError(_("CdtDbtInd must be CRDT or DBIT, not '%(value)s'.") % {"value": indicator})
    status = camt.first_text(entry, "Sts/Cd", "Sts")
    if camt.text(entry, "RvslInd").lower() == "true":
        return []  # a reversal of an earlier entry, not a new payment
    entry_amount = _camt_amount(camt, entry, "Amt")
    if entry_amount is None:
        raise StatementFormatError(_("The entry has no amount (Amt)."))
    booking_text = camt.first_text(entry, "BookgDt/Dt", "BookgDt/DtTm")
    if not booking_text:
        raise StatementFormatError(_("The entry has no booking date (BookgDt)."))
    booking_date = parse_date(booking_text)
    value_text = camt.first_text(entry, "ValDt/Dt", "ValDt/DtTm")
    value_date = parse_date(value_text) if value_text else None
    if indicator != "CRDT" or status != "BOOK":
        return []  # debits, and pending or information-only entries, are not money received
    entry_reference = camt.first_text(entry, "AcctSvcrRef", "NtryRef")
    extra_text = camt.text(entry, "AddtlNtryInf")
    transactions = camt.findall(entry, "NtryDtls/TxDtls")
    lines = []
    for position, transaction in enumerate(transactions or [None], start=1):
        amount, currency = entry_amount
        if transaction is not None and len(transactions) > 1:
            # Batch booking: each transfer has its own amount (.08: TxDtls/Amt; .02: AmtDtls/TxAmt/Amt).
            own = _camt_amount(camt, transaction, "Amt") or _camt_amount(camt, transaction, "AmtDtls/TxAmt/Amt")
            if own is None:
                raise StatementFormatError(_("A batched transaction has no amount of its own."))
            amount, currency = own
        references = [camt.text(ref, ".") for ref in camt.findall(transaction, "RmtInf/Strd/CdtrRefInf/Ref")]
        unstructured = [camt.text(text, ".") for text in camt.findall(transaction, "RmtInf/Ustrd")]
        remittance = " ".join(part for part in [*references, *unstructured] if part) or extra_text
        debtor = camt.first_text(transaction, "RltdPties/Dbtr/Pty/Nm", "RltdPties/Dbtr/Nm")
        tx_reference = camt.first_text(transaction, "Refs/AcctSvcrRef")
        if entry_reference and len(transactions) > 1:
            reference = tx_reference or f"{entry_reference}/{position}"
        else:
            reference = entry_reference or tx_reference
        if amount <= 0:
            raise StatementFormatError(_("A credit must have a positive amount."))
        lines.append(
            ParsedLine(
                booking_date=booking_date,
                value_date=value_date,
                amount=amount,
                currency=currency,
                debtor_name=debtor[:200],
                remittance_info=remittance,
                entry_reference=reference[:100],
            )
        )
    return lines
