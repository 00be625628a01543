"""Ledger exports from posted entries: the FEC passes every check and reads back, numbering
per journal is continuous, the other formats hold the same amounts; background exports run
once with progress; downloads stream."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from invoices.ledger import exports
from invoices.ledger.export_jobs import ExportRefused, ledger_export_request, ledger_export_run, ledger_exports_sweep
from invoices.ledger.fec import fec_bytes, fec_check, fec_read
from invoices.ledger.models import Account, LedgerExport
from tests.invoices.ledger.accexport_helpers import post_payment, post_sale

pytestmark = pytest.mark.django_db
YEAR = {"fiscal_year_start": date(2026, 1, 1), "fiscal_year_end": date(2026, 12, 31)}


@pytest.fixture
def books(brand, customer_factory):
    customer = customer_factory(brand=brand, legal_name="Société Œuvre & Fils")
    for n in range(1, 6):
        post_sale(brand=brand, customer=customer, day=date(2026, n, 10), number=f"F{n}", source_id=n,
                  lines=[(10000 * n, "S", Decimal("20"), 2000 * n)])  # fmt: skip
        post_payment(brand=brand, customer=customer, day=date(2026, n, 12), amount=12000 * n, source_id=100 + n)
    post_sale(
        brand=brand,
        customer=customer,
        day=date(2027, 1, 3),
        number="F99",
        source_id=99,
        lines=[(500, "S", Decimal("20"), 100)],
    )  # fmt: skip  (next fiscal year)
    return brand


def _fec(brand, livemode=True, year=2026, separator="\t"):
    name, chunks = exports.fec_export(brand=brand, livemode=livemode, fiscal_year=year, separator=separator)
    return name, b"".join(chunks)


def test_fec_of_a_year_passes_every_check_and_reads_back(books):
    name, data = _fec(books)

    assert name == "552100554FEC20261231.txt"
    assert fec_check(data, **YEAR, filename=name) == []
    rows = fec_read(data)
    assert len(rows) == 5 * 3 + 5 * 2  # five sales of three lines, five payments of two
    assert {row.journal_code for row in rows} == {"VT", "BQ"}
    assert [row.entry_number for row in rows if row.journal_code == "VT"][::3] == [
        f"VT2026-{n:07d}" for n in range(1, 6)
    ]
    customer_lines = [row for row in rows if row.account_number.startswith("411")]
    assert all(row.aux_number.startswith("C") and row.aux_label == "Société Œuvre & Fils" for row in customer_lines)
    assert sum(row.debit for row in rows) == sum(row.credit for row in rows) == sum(12000 * n * 2 for n in range(1, 6))


def test_fec_pipe_separator_and_other_year_and_mode(books):
    _name, piped = _fec(books, separator="|")
    assert fec_check(piped, **YEAR) == []
    _name, next_year = _fec(books, year=2027)
    assert len(fec_read(next_year)) == 3
    _name, test_mode = _fec(books, livemode=False)
    assert fec_read(test_mode) == []


def test_fec_check_catches_an_entry_missing_from_the_export(books):
    # negative control on real data: drop the lines of one sales entry
    _name, data = _fec(books)
    kept = [line for line in data.split(b"\r\n") if b"VT2026-0000002" not in line]
    assert {issue.check for issue in fec_check(b"\r\n".join(kept), **YEAR)} == {"numbering"}


def test_fec_lines_formatted_from_the_cursor_match_the_row_writer_with_awkward_text(
    brand, customer_factory, monkeypatch
):
    # given third parties and documents whose text holds a tab, a pipe, a line break, edge spaces
    awkward = customer_factory(brand=brand, legal_name=" Dupont\t& Fils | SARL\r\n")
    plain = customer_factory(brand=brand, legal_name="Martin")
    post_sale(brand=brand, customer=awkward, day=date(2026, 2, 1), number=" F|1\t", source_id=1,
              lines=[(10000, "S", Decimal("20"), 2000)])  # fmt: skip
    post_payment(brand=brand, customer=plain, day=date(2026, 2, 2), amount=500, source_id=2)
    post_sale(brand=brand, customer=plain, day=date(2026, 2, 3), number="F2", source_id=3,
              lines=[(500, "S", Decimal("20"), 100)])  # fmt: skip
    post_payment(brand=brand, customer=awkward, day=date(2026, 2, 4), amount=12000, source_id=4)

    for separator, name in (("\t", "Dupont & Fils | SARL"), ("|", "Dupont & Fils   SARL")):
        _name, data = _fec(brand, separator=separator)
        # then the file passes, keeps its 18 columns, and writing its rows back gives the same bytes
        assert fec_check(data, **YEAR) == []
        rows = fec_read(data)
        assert b"".join(fec_bytes(rows, separator=separator)) == data
        assert {row.aux_label for row in rows if row.aux_label} == {name, "Martin"}
        first_sale = next(row for row in rows if row.journal_code == "VT")
        assert first_sale.piece_ref == ("F|1" if separator == "\t" else "F 1")

    # and names read per chunk of rows give the same file when the chunks are tiny and the cache
    # of names is emptied on every chunk
    _name, expected = _fec(brand)
    monkeypatch.setattr(exports, "CHUNK", 2)
    monkeypatch.setattr(exports, "NAME_CACHE_LIMIT", 1)
    assert _fec(brand)[1] == expected


def test_journal_csv_and_xlsx_hold_every_line(books):
    selection = exports.LedgerFilter(brand=books, livemode=True, start=date(2026, 1, 1), end=date(2026, 12, 31))
    csv_text = b"".join(exports.csv_stream(exports.JOURNAL_COLUMNS, exports.journal_rows(selection))).decode(
        "utf-8-sig"
    )
    lines = csv_text.strip().split("\r\n")
    assert lines[0].split(";")[:4] == ["journal", "entry_number", "date", "account"]
    assert len(lines) == 1 + 25
    assert "120.00" in lines[1]  # 100.00 + 20 % on the first invoice, as a decimal

    workbook = load_workbook(
        io.BytesIO(
            exports.xlsx_bytes(title="Journal", header=exports.JOURNAL_COLUMNS, rows=exports.journal_rows(selection))
        )
    )
    sheet = workbook.active
    assert sheet.max_row == 26
    assert sum(Decimal(str(row[8])) for row in sheet.iter_rows(min_row=2, values_only=True)) == Decimal("3600.00")


def test_trial_balance_balances_and_general_ledger_runs_the_balance(books):
    selection = exports.LedgerFilter(brand=books, livemode=True, start=date(2026, 1, 1), end=date(2026, 12, 31))
    rows = list(exports.trial_balance_rows(selection, currency="EUR"))
    total = rows[-1]
    assert total[1] == "TOTAL" and total[2] == total[3] == "3600.00"
    receivable = next(row for row in rows if row[0].startswith("411"))
    assert receivable[2:4] == ("1800.00", "1800.00")

    bank = Account.objects.get(brand=books, code__startswith="512")
    ledger = list(exports.general_ledger_rows(
        exports.LedgerFilter(brand=books, livemode=True, start=date(2026, 3, 1), end=date(2026, 12, 31)),
        account=bank, currency="EUR",
    ))  # fmt: skip
    assert ledger[0][-1] == "360.00"  # opening: payments of January and February
    assert [row[-1] for row in ledger[1:]] == ["720.00", "1200.00", "1800.00"]


def test_quadra_and_sage_lines_are_fixed_width(books):
    selection = exports.LedgerFilter(brand=books, livemode=True, start=date(2026, 1, 1), end=date(2026, 1, 31))
    quadra = list(exports.quadra_lines(selection))
    assert len(quadra) == 5
    assert {len(line) for line in quadra} == {len(quadra[0])}
    first = quadra[0]
    assert first[0] == "M" and first[9:11] == "VT" and first[11:14] == "000" and first[14:20] == "100126"
    assert first[1:9].startswith("C")  # the customer's auxiliary account on the 411 line
    assert first[41:55] == "D+000000012000"

    sage = list(exports.sage_pnm_lines(selection, dossier="Atelier Nuage"))
    assert sage[0] == "Atelier Nuage\r\n"
    assert {len(line) for line in sage[1:]} == {len(sage[1])}
    assert sage[1][:9] == "VT 100126" and sage[1][11:24].strip().startswith("411") and sage[1][24] == "X"
    assert sage[1][25:38].startswith("C")  # the customer's auxiliary account
    assert (sage[1][83], sage[1][84:104].strip(), sage[1][104]) == ("D", "120.00", "N")


def test_background_export_runs_once_and_reports_progress(books, staff):
    export = ledger_export_request(
        brand=books, livemode=True, kind="fec", start=date(2026, 1, 1), end=date(2026, 1, 1),
        fiscal_year=2026, requested_by=staff,
    )  # fmt: skip
    export.refresh_from_db()  # tasks run eagerly in tests: it is done already
    assert (export.status, export.rows_done, export.rows_total, export.percent) == ("done", 25, 25, 100)
    assert export.filename == "552100554FEC20261231.txt"
    with export.file.open("rb") as stored:
        assert fec_check(stored.read(), **YEAR) == []
    # a duplicate delivery does nothing
    assert ledger_export_run(export_id=export.pk) is None


def test_export_request_refuses_bad_input(books):
    with pytest.raises(ExportRefused):
        ledger_export_request(brand=books, livemode=True, kind="fec", start=date(2026, 1, 1), end=date(2026, 1, 1))
    with pytest.raises(ExportRefused):
        ledger_export_request(
            brand=books, livemode=True, kind="journal_csv", start=date(2026, 2, 1), end=date(2026, 1, 1)
        )
    with pytest.raises(ExportRefused):
        ledger_export_request(
            brand=books, livemode=True, kind="general_ledger_csv", start=date(2026, 1, 1), end=date(2026, 2, 1),
            account_code="999999",
        )  # fmt: skip
    assert not LedgerExport.objects.exists()


def test_sweeper_resends_lost_exports_and_fails_stuck_ones(books, settings):
    from datetime import timedelta

    from config import clock

    now = clock.system_now()
    lost = LedgerExport.objects.create(
        brand=books,
        kind="journal_csv",
        start=date(2026, 1, 1),
        end=date(2026, 12, 31),
        created_at=now - timedelta(hours=1),
    )
    stuck = LedgerExport.objects.create(
        brand=books, kind="journal_csv", start=date(2026, 1, 1), end=date(2026, 12, 31), created_at=now,
        status="running", started_at=now - timedelta(hours=3),
    )  # fmt: skip
    fresh = LedgerExport.objects.create(
        brand=books, kind="journal_csv", start=date(2026, 1, 1), end=date(2026, 12, 31), created_at=now
    )

    assert ledger_exports_sweep() == 1

    statuses = {e.pk: e.status for e in LedgerExport.objects.all()}
    assert statuses == {lost.pk: "done", stuck.pk: "failed", fresh.pk: "pending"}
