"""Migration invoices 0011: the brand texts written before issue 17 become the brand's
default language's; the other language starts empty (the stock late-payment mention gets
its English wording)."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db

MIGRATION = ("invoices", "0011_documents_brand_translations")


def test_existing_texts_move_to_the_brand_language():
    apps = MigrationExecutor(connection).loader.project_state(MIGRATION).apps
    Brand = apps.get_model("invoices", "Brand")
    common = {"name": "X", "legal_name": "X SAS", "address_line1": "1 rue", "postal_code": "75001", "city": "Paris"}
    french = Brand.objects.create(
        slug="fr-brand", default_language="fr", footer_text="Merci", payment_instructions="Virement",
        country="FR", invoice_number_format="A-{seq}", credit_note_number_format="AA-{seq}", **common,
    )  # fmt: skip
    english = Brand.objects.create(
        slug="en-brand", default_language="en", footer_text="Thanks", late_payment_rate="Custom rate",
        country="GB", invoice_number_format="B-{seq}", credit_note_number_format="BB-{seq}", **common,
    )  # fmt: skip

    import_module("invoices.migrations.0011_documents_brand_translations").texts_to_default_language(apps, None)

    french.refresh_from_db()
    english.refresh_from_db()
    assert (french.footer_text_fr, french.footer_text_en) == ("Merci", None)
    assert (french.payment_instructions_fr, french.payment_instructions_en) == ("Virement", None)
    assert french.late_payment_rate_en == "3 × the French legal interest rate"
    assert (english.footer_text_en, english.footer_text_fr) == ("Thanks", None)
    assert english.late_payment_rate_en == english.late_payment_rate_fr == "Custom rate"
