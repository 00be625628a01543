"""Brands with logo, font and custom fields, and issued documents to render."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from invoices.calculations import DiscountInput, LineInput, compute_invoice_totals
from invoices.models import InvoiceCustomField, InvoiceLineColumn
from invoices.services.drafts import tax_breakdown_rows
from invoices.services.finalize import invoice_finalize
from tests.invoices.helpers import ISSUED_AT, create_draft

LOGO_COLOUR = (200, 30, 60)


def png_bytes(size: tuple[int, int] = (240, 80), colour: tuple[int, int, int] = LOGO_COLOUR) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def branded(brand):
    """The customers' brand, dressed: logo, font, colours, custom fields, a line column."""
    brand.logo.save("logo.png", SimpleUploadedFile("logo.png", png_bytes(), content_type="image/png"), save=False)
    brand.font = "liberation-serif"
    brand.primary_colour = "#1a7f37"
    brand.accent_colour = "#f0a202"
    brand.iban = "FR7630006000011234567890189"
    brand.bic = "AGRIFRPP"
    brand.footer_text = "Merci de votre confiance"
    brand.vat_on_debits = True
    brand.save()
    InvoiceCustomField.objects.create(brand=brand, label="Cost centre", value="CC-042")
    InvoiceLineColumn.objects.create(brand=brand, metadata_key="media_published", label="Media published")
    return brand


@pytest.fixture
def branded_customer(customer_factory, branded, tax_rate):
    customer = customer_factory(brand=branded, siren="303265045", delivery_address="Entrepôt 7, 12 quai Nord, Lyon")
    InvoiceCustomField.objects.create(customer=customer, label="PO number", value="PO-778899")
    return customer


def reprice(invoice, *, rates: list[tuple[str, Decimal]], discounts=(), metadata=None):
    """Give a draft's lines these (category, rate) pairs and discounts, totals recomputed
    with invoices.calculations (mixed VAT rates do not come out of one tax decision)."""
    lines = list(invoice.lines.order_by("position", "pk"))
    totals = compute_invoice_totals(
        currency=invoice.currency,
        lines=[
            LineInput(amount=line.amount, tax_rate=rate, tax_category=category)
            for line, (category, rate) in zip(lines, rates, strict=True)
        ],
        discounts=list(discounts),
    )
    for index, (line, (category, rate), line_totals) in enumerate(zip(lines, rates, totals.lines, strict=True)):
        line.tax_category, line.tax_rate = category, rate
        line.discount_amount, line.tax_amount = line_totals.discount_amount, line_totals.tax_amount
        line.metadata = (metadata or {}).get(index, {})
        line.save()
    invoice.subtotal = totals.subtotal
    invoice.discount_total = totals.discount_total
    invoice.tax_total = totals.tax_total
    invoice.total = totals.total
    invoice.total_excluding_tax = totals.total_excluding_tax
    invoice.amount_due = invoice.amount_remaining = totals.total
    invoice.tax_breakdown = tax_breakdown_rows(totals.tax_breakdown)
    invoice.custom_fields = {
        **invoice.custom_fields,
        "discounts": [{"label": "Bienvenue -10 %", "amount": amount} for amount in totals.discount_amounts],
        "vat_mention": None,
    }
    invoice.save()
    return invoice


@pytest.fixture
def mixed_invoice(branded_customer):
    """Issued: a 10 % discount, lines at 20 % and 5.5 %, line metadata for the extra column."""
    draft = create_draft(branded_customer, [12000, 4550, 990], collection_method="send_invoice", days_until_due=30)
    reprice(
        draft,
        rates=[("S", Decimal(20)), ("S", Decimal("5.5")), ("S", Decimal(20))],
        discounts=[DiscountInput(percent_off=Decimal(10))],
        metadata={0: {"media_published": 42}},
    )
    return invoice_finalize(invoice=draft, at=ISSUED_AT)


@pytest.fixture
def reverse_charge_invoice(customer_factory, branded, tax_rate):
    """Issued to a German business with a valid DE VAT number: category AE, 0 %."""
    customer = customer_factory(
        brand=branded, country="DE", tax_id="DE136695976", preferred_language="en", city="Berlin", postal_code="10115"
    )
    draft = create_draft(customer, [50000, 2500])
    return invoice_finalize(invoice=draft, at=ISSUED_AT)


@pytest.fixture
def export_invoice(customer_factory, branded, tax_rate):
    """Issued to a US customer: outside the EU, category O."""
    customer = customer_factory(brand=branded, country="US", preferred_language="en", city="Boston")
    return invoice_finalize(invoice=create_draft(customer, [30000]), at=ISSUED_AT)
