"""Importing statements: duplicates and overlaps change nothing; malformed files import nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.bank_import import StatementImportError
from billing.bank_statements import StatementFormatError, parse_csv, to_minor_units
from billing.models import BankStatement, BankStatementLine, Payment
from config.events.models import DomainEvent
from invoices.models import BalanceTransaction, Invoice
from tests.billing.reconciliation.conftest import data_file

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    """Everything an import could change."""
    return {
        "statements": list(BankStatement.objects.values_list("pk", "statement_id").order_by("pk")),
        "lines": list(BankStatementLine.objects.values_list("pk", "fingerprint", "status").order_by("pk")),
        "payments": list(Payment.objects.values_list("pk", "amount", "invoice_id").order_by("pk")),
        "balance": list(BalanceTransaction.objects.values_list("pk", "amount").order_by("pk")),
        "invoices": list(Invoice.objects.values_list("pk", "status", "amount_paid").order_by("pk")),
        "events": DomainEvent.objects.count(),
    }


@pytest.mark.parametrize("name", ["camt053_001_02.xml", "camt053_001_08.xml", "releve_fr.csv"])
def test_importing_the_same_statement_twice_changes_nothing(open_invoice, import_file, name):
    for customer_id in (4201, 4202, 4203, 4204, 4205):
        open_invoice(customer_id)
    first = import_file(name)
    before = snapshot()
    assert first.new_lines > 0 and before["payments"]

    second = import_file(name)

    assert (second.new_lines, second.skipped_lines) == (0, first.new_lines)
    assert snapshot() == before


def test_an_overlapping_statement_adds_only_its_new_lines(open_invoice, import_file):
    open_invoice(4201)
    open_invoice(4203)
    header = "booking_date;amount;currency;remittance_info\n"
    day_one = "2026-03-05;34,80;EUR;RF21TARIF00004201\n"
    day_two = "2026-03-06;34,80;EUR;RF64TARIF00004203\n"
    import_file((header + day_one).encode(), "csv")
    payments = Payment.objects.count()

    overlap = import_file((header + day_one + day_two).encode(), "csv")

    assert (overlap.new_lines, overlap.skipped_lines) == (1, 1)
    assert Payment.objects.count() == payments + 1
    assert BankStatementLine.objects.count() == 2
    # a statement whose every line was known leaves no empty statement behind
    import_file((header.replace("\n", ";statement_id\n") + day_one.replace("\n", ";S-9\n")).encode(), "csv")
    assert not BankStatement.objects.filter(statement_id="S-9").exists()


def test_two_identical_transfers_on_one_day_are_two_lines_and_stay_two(open_invoice, import_file):
    open_invoice(4201)
    statement = b"booking_date;amount;currency;remittance_info\n2026-03-05;10,00;EUR;RF21TARIF00004201\n" * 1
    statement += b"2026-03-05;10,00;EUR;RF21TARIF00004201\n"

    assert import_file(statement, "csv").new_lines == 2
    assert import_file(statement, "csv").new_lines == 0
    assert Invoice.objects.get().amount_paid == 2000


def test_a_french_csv_export(open_invoice, import_file):
    open_invoice(4201)
    open_invoice(4203)

    summary = import_file("releve_fr.csv")

    lines = list(BankStatementLine.objects.order_by("sequence"))
    assert summary.new_lines == 3  # the debit (-45,00) is not a payment received
    assert [line.amount for line in lines] == [3480, 123456, 1500]
    assert [str(line.value_date) for line in lines] == ["2026-03-05", "2026-03-06", "2026-03-06"]
    assert lines[0].remittance_info.startswith("VIR SEPA DE ATELIER DUPONT")  # Windows-1252 decoded
    assert [line.status for line in lines] == ["matched", "matched", "unmatched"]
    assert lines[1].amount_credited == 123456 - 3480


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1 234,56", "EUR", 123456),
        ("1.234,56", "EUR", 123456),
        ("1,234.56", "EUR", 123456),
        ("1234.5", "EUR", 123450),
        ("34,80", "EUR", 3480),
        ("1\u202f000", "JPY", 1000),
        ("+12,345", "KWD", 12345),
    ],
)
def test_amounts_in_french_and_english_writing(text, currency, minor):
    assert to_minor_units(text, currency) == minor


def test_a_comma_separated_csv_with_quoted_decimal_commas():
    parsed = parse_csv(b'date,montant,devise,libelle\n31/03/2026,"1 200,50",EUR,RF21TARIF00004201\n')
    assert [(line.amount, str(line.booking_date)) for line in parsed.lines] == [(120050, "2026-03-31")]


MALFORMED = [
    ("camt053", b"this is not xml at all", "not a well-formed XML"),
    ("camt053", b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'/>", "not a CAMT.053"),
    ("camt053", b"<?xml version='1.0'?><html><body>statement</body></html>", "not a CAMT.053"),
    ("csv", b"date;montant;devise\n2026-03-05;12,00;EUR\n", "Missing column(s): remittance_info"),
    ("csv", b"date;montant;devise;libelle\n2026-03-05;12,00;EUR;ok\n2026-03-06;douze;EUR;bad\n", "Line 3"),
    ("csv", b"date;montant;devise;libelle\n2026-03-05;12,001;EUR;x\n", "more decimals"),
    ("csv", b"date;montant;devise;libelle\n2026-02-30;12,00;EUR;x\n", "not a date"),
    ("csv", b"date;montant;devise;libelle\n2026-03-05;12,00;EUX;x\n", "not a known currency"),
    ("csv", b"", "empty"),
    ("csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text"),
]


@pytest.mark.parametrize(("source_format", "data", "message"), MALFORMED)
def test_a_malformed_file_says_why_and_imports_nothing(open_invoice, import_file, source_format, data, message):
    open_invoice(4201)
    before = snapshot()

    with pytest.raises(StatementImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_file(data, source_format)

    assert snapshot() == before


def _camt_with(entry_fragment: str) -> bytes:
    template = data_file("camt053_001_02.xml").decode()
    start = template.index("<Ntry>")
    end = template.index("</Ntry>") + len("</Ntry>")
    return (template[:start] + entry_fragment + template[end:]).encode()


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("<Ntry><Amt Ccy='EUR'>12.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>", "booking date"),
        (
            "<Ntry><Amt Ccy='EUR'>12,00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
            "<BookgDt><Dt>2026-03-05</Dt></BookgDt></Ntry>",
            "Entry 1",
        ),
        (
            "<Ntry><Amt Ccy='ZZZ'>12.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
            "<BookgDt><Dt>2026-03-05</Dt></BookgDt></Ntry>",
            "not a known currency",
        ),
        (
            "<Ntry><Amt Ccy='EUR'>12.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
            "<BookgDt><Dt>05.13.2026</Dt></BookgDt></Ntry>",
            "not a date",
        ),
    ],
)
def test_a_camt_file_with_one_bad_entry_imports_none_of_the_good_ones(open_invoice, import_file, fragment, message):
    open_invoice(4201)
    before = snapshot()

    with pytest.raises(StatementImportError, match=message):
        import_file(_camt_with(fragment), "camt053")

    assert snapshot() == before


def test_an_unsupported_camt_version_is_refused():
    from billing.bank_statements import parse_camt053

    data = data_file("camt053_001_02.xml").replace(b"camt.053.001.02", b"camt.053.001.01")
    with pytest.raises(StatementFormatError, match="001.01"):
        parse_camt053(data)


def test_xml_entities_are_not_expanded():
    from billing.bank_statements import parse_camt053

    hostile = (
        data_file("camt053_001_02.xml")
        .replace(
            b'<?xml version="1.0" encoding="UTF-8"?>',
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        )
        .replace(b"REMBOURSEMENT NOTE DE FRAIS", b"&x;")
    )
    parsed = parse_camt053(hostile)
    assert all("root:" not in line.remittance_info for line in parsed.lines)


@given(minor=st.integers(min_value=0, max_value=10**12), style=st.sampled_from(["fr", "fr_dot", "en", "plain"]))
def test_any_amount_written_the_french_or_english_way_reads_back_exactly(minor, style):
    whole, cents = divmod(minor, 100)
    if style == "fr":
        text = f"{whole:,}".replace(",", "\u202f") + f",{cents:02d}"
    elif style == "fr_dot":
        text = f"{whole:,}".replace(",", ".") + f",{cents:02d}"
    elif style == "en":
        text = f"{whole:,}.{cents:02d}"
    else:
        text = f"{whole}.{cents:02d}"
    assert to_minor_units(text, "EUR") == minor
