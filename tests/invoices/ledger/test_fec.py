"""The FEC writer against `fec_check`, the checks of the DGFiP's validation tool: a good file
passes, and each check has a negative control (a file broken in exactly that way fails with
that check). No database: the writer works on rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from invoices.ledger.fec import (
    FEC_COLUMNS,
    FecLine,
    fec_bytes,
    fec_check,
    fec_filename,
    fec_format_amount,
    fec_read,
)

YEAR = {"fiscal_year_start": date(2026, 1, 1), "fiscal_year_end": date(2026, 12, 31)}


def _sale(number: int, day: date, *, net: int, vat: int, customer: str = "C001") -> list[FecLine]:
    common = {
        "journal_code": "VE",
        "journal_label": "Ventes",
        "entry_number": f"VE{number:06d}",
        "entry_date": day,
        "piece_ref": f"INV-{number}",
        "piece_date": day,
        "validation_date": day,
    }
    return [
        FecLine(
            **common,
            account_number="411000",
            account_label="Clients",
            aux_number=customer,
            aux_label="Société Œuvre & Fils",
            label=f"Facture INV-{number}",
            debit=net + vat,
            credit=0,
        ),
        FecLine(
            **common, account_number="706000", account_label="Prestations", label="Abonnement", debit=0, credit=net
        ),
        FecLine(
            **common, account_number="445710", account_label="TVA collectée 20 %", label="TVA", debit=0, credit=vat
        ),
    ]


def _payment(number: int, day: date, amount: int) -> list[FecLine]:
    common = {
        "journal_code": "BQ",
        "journal_label": "Banque",
        "entry_number": f"BQ{number:06d}",
        "entry_date": day,
        "piece_ref": f"PAY-{number}",
        "piece_date": day,
        "validation_date": day,
        "label": "Règlement carte",
    }
    return [
        FecLine(**common, account_number="512000", account_label="Banque", debit=amount, credit=0),
        FecLine(
            **common,
            account_number="411000",
            account_label="Clients",
            aux_number="C001",
            aux_label="Société Œuvre & Fils",
            debit=0,
            credit=amount,
            lettering="AA",
            lettering_date=day,
            foreign_amount=-13050,
            foreign_currency="USD",
        ),
    ]


def _rows() -> list[FecLine]:
    return [
        *_sale(1, date(2026, 1, 5), net=10000, vat=2000),
        *_payment(1, date(2026, 1, 6), 12000),
        *_sale(2, date(2026, 2, 1), net=123456, vat=24691),
    ]


def _file(separator: str = "\t") -> bytes:
    return b"".join(fec_bytes(_rows(), separator=separator, chunk_lines=2))


def _lines(data: bytes) -> list[str]:
    return data.decode("iso-8859-15").split("\r\n")[:-1]


def _join(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("iso-8859-15")


def _set(data: bytes, line: int, column: str, value: str) -> bytes:
    lines = _lines(data)
    cells = lines[line].split("\t")
    cells[FEC_COLUMNS.index(column)] = value
    lines[line] = "\t".join(cells)
    return _join(lines)


def _checks(data: bytes, **kwargs) -> set[str]:
    return {issue.check for issue in fec_check(data, **{**YEAR, **kwargs})}


def test_a_written_file_passes_every_check_in_both_separators():
    assert fec_check(_file(), **YEAR, filename="552100554FEC20261231.txt") == []
    assert fec_check(_file("|"), **YEAR) == []


def test_the_header_names_the_eighteen_fields_in_order_and_lines_end_in_crlf():
    data = _file()
    header, first = data.split(b"\r\n")[:2]
    assert header.split(b"\t") == [name.encode() for name in FEC_COLUMNS]
    assert len(FEC_COLUMNS) == 18
    assert first.split(b"\t")[:4] == [b"VE", b"Ventes", b"VE000001", b"20260105"]


def test_amounts_use_a_comma_without_thousands_separator_and_dates_are_yyyymmdd():
    lines = _lines(_file())
    sale = lines[6].split("\t")
    assert sale[FEC_COLUMNS.index("Debit")] == "1481,47"
    assert sale[FEC_COLUMNS.index("Credit")] == "0,00"
    assert sale[FEC_COLUMNS.index("EcritureDate")] == "20260201"
    assert fec_format_amount(5) == "0,05"
    assert fec_format_amount(-123456789) == "-1234567,89"
    assert fec_format_amount(1500, 0) == "1500"


def test_the_file_is_latin9_so_euro_and_oe_survive_and_other_scripts_fold():
    data = _file()
    assert "Œuvre".encode("iso-8859-15") in data
    row = _rows()[0]
    folded = b"".join(fec_bytes([replace(row, aux_label="Ćirić 株式会社 €")]))
    assert folded.split(b"\r\n")[1].split(b"\t")[7] == "Ciric ???? €".encode("iso-8859-15")


def test_a_separator_or_line_break_inside_a_field_never_adds_a_column():
    row = _rows()[1]
    data = b"".join(fec_bytes([replace(row, label="a\tb|c\r\nd")], separator="|"))
    assert data.split(b"\r\n")[1].split(b"|")[10] == b"a b c  d"


def test_round_trip_reads_back_the_rows_written():
    assert fec_read(_file()) == _rows()
    assert fec_read(_file("|")) == _rows()


def test_file_name_is_siren_fec_closing_date():
    assert fec_filename(siren="552 100 554", closing_date=date(2026, 12, 31)) == "552100554FEC20261231.txt"
    with pytest.raises(ValueError):
        fec_filename(siren="1234", closing_date=date(2026, 12, 31))


# -- negative controls: one break, one check -------------------------------------------------


def test_bad_file_name_fails_filename():
    assert _checks(_file(), filename="FEC2026.txt") == {"filename"}
    assert _checks(_file(), filename="552100554FEC20261130.txt") == {"filename"}


def test_bad_header_fails_header():
    lines = _lines(_file())
    lines[0] = lines[0].replace("EcritureLet\tDateLet", "DateLet\tEcritureLet")
    assert _checks(_join(lines)) == {"header"}


def test_wrong_encoding_fails_encoding():
    # Latin-9 maps all 256 bytes, so a wrong encoding shows as UTF-8 sequences or control bytes.
    assert _checks(_file().decode("iso-8859-15").encode("utf-8")) == {"encoding"}
    assert _checks(_file().decode("iso-8859-15").encode("utf-16")) == {"encoding"}


def test_missing_column_fails_columns():
    lines = _lines(_file())
    lines[2] = lines[2].rsplit("\t", 1)[0]
    assert _checks(_join(lines)) == {"columns", "entry_balance", "total_balance"}


def test_empty_mandatory_field_fails_mandatory():
    assert _checks(_set(_file(), 2, "CompteLib", "")) == {"mandatory"}


def test_bad_date_fails_date_format():
    assert _checks(_set(_file(), 2, "PieceDate", "05/01/2026")) == {"date_format"}


def test_entry_outside_the_fiscal_year_fails_fiscal_year():
    data = _file()
    for line in (1, 2, 3):
        data = _set(data, line, "EcritureDate", "20251231")
    assert _checks(data) == {"fiscal_year"}


def test_non_numeric_amount_fails_amount_format():
    assert _checks(_set(_file(), 2, "Credit", "100.00")) == {"amount_format", "entry_balance", "total_balance"}


def test_debit_and_credit_on_one_line_fails_debit_xor_credit():
    data = _set(_set(_file(), 2, "Debit", "10,00"), 3, "Credit", "30,00")
    assert _checks(data) == {"debit_xor_credit"}


def test_zero_line_fails_debit_xor_credit():
    data = _set(_set(_file(), 1, "Debit", "100,00"), 3, "Credit", "0,00")
    assert _checks(data) == {"debit_xor_credit"}


def test_customer_line_without_auxiliary_account_fails_auxiliary():
    data = _set(_set(_file(), 1, "CompAuxNum", ""), 1, "CompAuxLib", "")
    assert _checks(data) == {"auxiliary"}


def test_foreign_amount_without_currency_fails_currency():
    assert _checks(_set(_file(), 5, "Idevise", "")) == {"currency"}
    assert _checks(_set(_file(), 5, "Idevise", "usd")) == {"currency"}


def test_lettering_date_without_letter_fails_lettering():
    assert _checks(_set(_file(), 5, "EcritureLet", "")) == {"lettering"}


def test_two_dates_in_one_entry_fails_entry_date():
    assert _checks(_set(_file(), 3, "EcritureDate", "20260106")) == {"entry_date"}


def test_unbalanced_entry_fails_entry_balance_and_total():
    assert _checks(_set(_file(), 3, "Credit", "20,01")) == {"entry_balance", "total_balance"}


def test_entries_that_balance_only_together_fail_entry_balance_not_total():
    data = _set(_set(_file(), 3, "Credit", "20,01"), 7, "Credit", "1234,55")
    assert _checks(data) == {"entry_balance"}


def test_gap_in_numbering_fails_numbering():
    data = _file()
    for line in (6, 7, 8):
        data = _set(data, line, "EcritureNum", "VE000003")
    assert _checks(data) == {"numbering"}


def test_lines_out_of_validation_order_fail_order():
    data = _set(_set(_file(), 4, "ValidDate", "20260104"), 5, "ValidDate", "20260104")
    assert _checks(data) == {"order"}


def test_entry_split_in_two_blocks_fails_entry_split():
    lines = _lines(_file())
    lines[3], lines[4] = lines[4], lines[3]
    assert "entry_split" in _checks(_join(lines))
