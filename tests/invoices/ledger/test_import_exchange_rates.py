"""`import_exchange_rates`: the ECB's CSV and XML files into ExchangeRate, idempotent; a bad
file stops with exit code 1 and says why, and writes nothing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from invoices.ledger.fx import conversion_rate
from invoices.ledger.models import ExchangeRate

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.django_db


def _rates() -> dict[tuple[str, date], Decimal]:
    return {(r.currency, r.date): r.rate for r in ExchangeRate.objects.filter(base="EUR")}


def test_ecb_csv_imports_each_currency_and_day_skipping_na(capsys):
    call_command("import_exchange_rates", file=str(FIXTURES / "eurofxref-hist.csv"))

    rates = _rates()
    assert len(rates) == 6  # USD, JPY, GBP on two days; CYP is N/A
    assert rates[("USD", date(2026, 1, 5))] == Decimal("1.0389")
    assert rates[("GBP", date(2026, 1, 6))] == Decimal("0.83455")
    assert "6 rates added, 0 updated" in capsys.readouterr().out


def test_ecb_xml_imports_and_a_second_run_changes_nothing(capsys):
    call_command("import_exchange_rates", file=str(FIXTURES / "eurofxref-hist.xml"))
    call_command("import_exchange_rates", file=str(FIXTURES / "eurofxref-hist.xml"))

    assert _rates()[("CHF", date(2026, 1, 7))] == Decimal("0.9371")
    assert ExchangeRate.objects.count() == 4
    assert "0 rates added, 0 updated" in capsys.readouterr().out.splitlines()[-1]


def test_a_corrected_rate_is_updated_and_the_ledger_converts_with_it(tmp_path):
    call_command("import_exchange_rates", file=str(FIXTURES / "eurofxref-hist.csv"))
    corrected = tmp_path / "fix.csv"
    corrected.write_text("Date,USD\n2026-01-06,1.0500\n")
    call_command("import_exchange_rates", file=str(corrected))

    assert _rates()[("USD", date(2026, 1, 6))] == Decimal("1.0500")
    # 1 USD in EUR on a Saturday uses the Tuesday's rate (latest on or before the day).
    assert conversion_rate(currency="USD", functional_currency="EUR", on=date(2026, 1, 10)) == (
        Decimal(1) / Decimal("1.0500")
    ).quantize(Decimal("1E-10"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Currency,USD\n2026-01-06,1.04\n", 'starts with a "Date" column'),
        ("Date,USD\n06/01/2026,1.04\n", "Line 2: '06/01/2026' is not a date"),
        ("Date,USD\n2026-01-06,abc\n", "Line 2: 'abc' is not a rate"),
        ("Date,USD\n2026-01-06,-1\n", "Line 2: a rate is positive"),
        ("Date,US1\n2026-01-06,1.04\n", "'US1' is not a currency code"),
        ("Date,USD\n", "holds no exchange rate"),
    ],
)
def test_a_bad_csv_fails_with_its_reason_and_writes_nothing(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("import_exchange_rates", file=str(bad))
    assert not ExchangeRate.objects.exists()


def test_a_bad_xml_fails_with_its_reason(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<Envelope><Cube><Cube time='2026-01-06'><Cube currency='USD' rate='x'/>")
    with pytest.raises(CommandError, match="Not a well-formed XML file"):
        call_command("import_exchange_rates", file=str(bad))
    entity_bomb = tmp_path / "bomb.xml"
    entity_bomb.write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    with pytest.raises(CommandError, match="Not a well-formed XML file"):
        call_command("import_exchange_rates", file=str(entity_bomb))


def test_exit_code_is_one_on_a_bad_file(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.csv"
    bad.write_text("nope\n")
    done = subprocess.run(
        [sys.executable, "manage.py", "import_exchange_rates", "--file", str(bad)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert done.returncode == 1
    assert 'starts with a "Date" column' in done.stderr


def test_no_file_and_no_url_is_refused(settings):
    settings.TARIF_EXCHANGE_RATES_URL = ""
    with pytest.raises(CommandError, match="TARIF_EXCHANGE_RATES_URL"):
        call_command("import_exchange_rates")
    with pytest.raises(CommandError, match="https"):
        call_command("import_exchange_rates", url="http://example.com/rates.xml")
