"""The seeded tax codes (migration invoices 0008) for tests: seeded again on demand, since a
transactional test's flush empties the table the migration filled."""

from __future__ import annotations

from importlib import import_module

from django.apps import apps

from invoices.models import TaxCode


def seeded_tax_codes() -> dict[str, TaxCode]:
    import_module("invoices.migrations.0008_tax_codes").seed_tax_codes(apps, None)
    import_module("invoices.migrations.0014_tax_code_reason_languages").reasons_by_language(apps, None)
    return {code.code: code for code in TaxCode.objects.all()}
