"""VAT as it lands on issued invoices (the rules themselves: tests/invoices/test_vat.py)."""

from __future__ import annotations

import pytest
from django.db import transaction

from invoices.services.drafts import invoice_create
from invoices.services.tax import MissingTaxRate
from tests.invoices.helpers import ISSUED_AT, draft_for, issue

pytestmark = pytest.mark.django_db


def mentions(invoice) -> dict[str, str]:
    return {mention["key"]: mention["text"] for mention in invoice.issued_snapshot["mentions"]}


def test_french_consumer_pays_french_vat(customer_factory, brand, fr_vat):
    # given a consumer in France
    customer = customer_factory(brand=brand, is_business=False)

    # when invoiced 29.00
    invoice = issue(customer, [2900])

    # then 20 % VAT is added: 5.80, total 34.80, no VAT mention
    assert (invoice.tax_total, invoice.total) == (580, 3480)
    assert invoice.lines.get().tax_category == "S"
    assert invoice.issued_snapshot["vat_mention"] is None


def test_german_business_with_a_valid_vat_number_is_reverse_charged(customer_factory, brand, fr_vat, de_vat):
    # given a German company with a valid German VAT number
    customer = customer_factory(brand=brand, country="DE", is_business=True, tax_id="DE136695976")

    # when invoiced 29.00
    invoice = issue(customer, [2900])

    # then no VAT is charged (AE, 0 %), and the reverse-charge mention and its VAT number are on the invoice
    line = invoice.lines.get()
    assert (line.tax_category, line.tax_rate, invoice.tax_total, invoice.total) == ("AE", 0, 0, 2900)
    assert invoice.tax_breakdown == [
        {"category": "AE", "rate": "0", "inclusive": False, "taxable_amount": 2900, "tax_amount": 0}
    ]
    assert mentions(invoice)["reverse_charge"].startswith("Autoliquidation – TVA due par le preneur")
    assert invoice.issued_snapshot["buyer"]["vat_number"] == "DE136695976"


def test_german_consumer_pays_german_vat_through_the_oss(customer_factory, brand, fr_vat, de_vat):
    # given a consumer in Germany
    customer = customer_factory(brand=brand, country="DE", is_business=False)

    # when invoiced 29.00
    invoice = issue(customer, [2900])

    # then German VAT at 19 %: 5.51
    line = invoice.lines.get()
    assert (line.tax_category, line.tax_rate) == ("S", 19)
    assert (invoice.tax_total, invoice.total) == (551, 3451)


def test_canadian_customer_is_outside_the_scope_of_eu_vat(customer_factory, brand, fr_vat):
    # given a customer in Canada
    customer = customer_factory(brand=brand, country="CA", is_business=True)

    # when invoiced 29.00
    invoice = issue(customer, [2900])

    # then category O at 0 % with the export mention
    assert (invoice.lines.get().tax_category, invoice.tax_total, invoice.total) == ("O", 0, 2900)
    assert mentions(invoice)["export_outside_eu"] == "TVA non applicable, article 259-1 du CGI"


def test_tax_inclusive_prices_keep_their_total(customer_factory, brand, fr_vat):
    # given a consumer and a price of 12.00 VAT included
    customer = customer_factory(brand=brand, is_business=False)

    # when invoiced
    invoice = issue(customer, [1200], inclusive=True)

    # then the total stays 12.00, of which 2.00 VAT
    assert (invoice.subtotal, invoice.tax_total, invoice.total, invoice.total_excluding_tax) == (1200, 200, 1200, 1000)


def test_a_missing_tax_rate_is_a_clear_error(customer_factory, brand, fr_vat):
    # given a consumer in Germany but no German rate configured
    customer = customer_factory(brand=brand, country="DE", is_business=False)

    # when a draft is built
    with pytest.raises(MissingTaxRate, match="No standard VAT rate is configured for DE"), transaction.atomic():
        invoice_create(draft=draft_for(customer), at=ISSUED_AT, customer=customer)
