"""`manage.py import_bank_statement`: the console's import from a script."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import BankStatement, Payment
from tests.billing.reconciliation.conftest import DATA

pytestmark = pytest.mark.django_db


def test_the_command_imports_and_matches_then_skips_a_second_time(open_invoice, staff):
    for customer_id in (4201, 4202, 4203):
        open_invoice(customer_id)
    out = StringIO()

    call_command("import_bank_statement", str(DATA / "camt053_001_02.xml"), "--user", staff.username, stdout=out)

    assert "2 matched, 1 partially matched, 1 unmatched" in out.getvalue()
    assert "4 new line(s), 0 already imported" in out.getvalue()
    assert BankStatement.objects.get().imported_by == staff
    again = StringIO()
    call_command("import_bank_statement", str(DATA / "camt053_001_02.xml"), stdout=again)
    assert "0 new line(s), 4 already imported" in again.getvalue()
    assert Payment.objects.count() == 3


def test_a_malformed_file_exits_2_and_imports_nothing(tmp_path):
    bad = tmp_path / "releve.csv"
    bad.write_bytes(b"date;montant\n2026-03-05;12,00\n")

    with pytest.raises(CommandError, match="Missing column") as raised:
        call_command("import_bank_statement", str(bad))

    assert raised.value.returncode == 2
    assert not BankStatement.objects.exists()
    pdf = tmp_path / "releve.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    with pytest.raises(CommandError, match="--format"):
        call_command("import_bank_statement", str(pdf))
    with pytest.raises(CommandError, match="No file"):
        call_command("import_bank_statement", str(tmp_path / "missing.xml"))
