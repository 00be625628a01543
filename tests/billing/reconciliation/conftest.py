"""Fixtures for bank reconciliation: customers with known ids (so the statement files in
data/ can quote their RF references) and open send-invoice invoices of 34.80 EUR."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.bank_import import bank_statement_import
from tests.billing.payments.conftest import now, subscribe  # noqa: F401 (fixtures)
from tests.billing.services.conftest import billing_brand, make_customer, make_price  # noqa: F401

DATA = Path(__file__).parent / "data"
INVOICE_TOTAL = 3480  # 29.00 EUR + 20 % VAT


def data_file(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def open_invoice(subscribe, make_customer, billing_brand):  # noqa: F811
    """open_invoice(customer_id) -> an open 34.80 EUR send-invoice invoice of that customer (created if new)."""
    from customers.models import Customer

    # The brand's series as a real one is written, so data/ files can quote invoice numbers.
    billing_brand.invoice_number_format = "F-{year}-{seq:06d}"
    billing_brand.save(update_fields=["invoice_number_format"])

    def make(customer_id: int, **customer_fields):
        customer = Customer.objects.filter(pk=customer_id).first() or make_customer(id=customer_id, **customer_fields)
        _, invoice = subscribe(None, customer=customer, collection_method="send_invoice", days_until_due=30)
        assert invoice.status == "open" and invoice.amount_remaining == INVOICE_TOTAL
        return invoice

    return make


@pytest.fixture
def import_file():
    """import_file(name or bytes, format) -> ImportSummary, through the same resource as the console."""

    def run(source: str | bytes, source_format: str | None = None, **kwargs):
        data = data_file(source) if isinstance(source, str) else source
        if source_format is None:
            source_format = "csv" if isinstance(source, str) and source.endswith(".csv") else "camt053"
        return bank_statement_import(data=data, source_format=source_format, **kwargs)

    return run
