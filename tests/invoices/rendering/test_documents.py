"""Issued invoices and credit notes as PDF (Factur-X) and HTML, in both layouts and languages."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw
from pypdf import PdfReader

from invoices.models import Document
from invoices.rendering.context import credit_note_document, invoice_document
from invoices.rendering.html import document_html
from invoices.services.credit_notes import credit_note_create
from invoices.services.pdf import credit_note_document_store, invoice_document_store, invoice_pdf_render
from tests.invoices.helpers import ISSUED_AT

pytestmark = pytest.mark.django_db


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"[\u00a0\u202f]", " ", text)  # Babel's (narrow) no-break spaces


def squashed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("layout", ["classic", "modern"])
@pytest.mark.parametrize("language", ["fr", "en"])
def test_each_layout_renders_the_invoice_with_its_amounts_mentions_and_custom_fields(
    branded, branded_customer, layout, language, request
):
    # given a brand in this layout, selling goods and services, and a customer reading this language
    branded.layout = layout
    branded.operation_category = "mixed"
    branded.save()
    branded_customer.preferred_language = language
    branded_customer.save()
    invoice = request.getfixturevalue("mixed_invoice")

    # when the invoice is rendered
    text = pdf_text(invoice_pdf_render(invoice=invoice))

    # then the PDF shows what the law and the customer need to see
    flat = squashed(text)
    assert invoice.number in text
    if language == "fr":
        assert "FACTURE" in text.upper() and "Total TTC" in text and "Montant dû" in text
        assert squashed(f"{invoice.total // 100},{invoice.total % 100:02d} €") in flat  # total, French format
        assert "indemnité forfaitaire pour frais de recouvrement" in text and "40 €" in text
        assert "Pénalités de retard" in text and "L441-10" in text
        assert "Option pour le paiement de la taxe d'après les débits" in text
        assert "Catégorie de l'opération : Mixte (biens et services)" in text
        assert "Adresse de livraison" in text
    else:
        assert "INVOICE" in text.upper() and "Total incl. VAT" in text and "Amount due" in text
        assert squashed(f"€{invoice.total // 100}.{invoice.total % 100:02d}") in flat
        assert "Fixed compensation for recovery costs" in text and "€40" in text
        assert "Late-payment penalties" in text and "L441-10" in text
        assert "VAT payable on debits" in text
        assert "Type of transaction: goods and services" in text
        assert "Delivery address" in text
    assert squashed("Entrepôt 7, 12 quai Nord, Lyon") in flat  # the delivery address, as it differs
    assert "Bienvenue -10 %" in text  # the discount
    assert "COST CENTRE" in text.upper() and "CC-042" in text  # brand custom field (label in capitals)
    assert "PO NUMBER" in text.upper() and "PO-778899" in text  # customer custom field
    assert "MEDIAPUBLISHED" in flat.upper()  # the line metadata column
    assert "42" in text
    assert "303265045" in text  # the customer's SIREN (2026 reform)
    assert "FR7630006000011234567890189" in text  # payment instructions
    assert "RCS Paris 552 100 554" in text and "50 000 €" in text  # seller legal identity
    assert "1 / 1" in text  # page numbers


def test_the_pdf_embeds_the_logo_the_brand_font_and_the_brand_colour(mixed_invoice):
    reader = PdfReader(io.BytesIO(invoice_pdf_render(invoice=mixed_invoice)))
    page = reader.pages[0]

    assert len(page.images) >= 1, "the logo is in the PDF"
    fonts = {str(font["/BaseFont"]) for font in _fonts(page)}
    assert any("Liberation-Serif" in font for font in fonts), fonts
    content = page.get_contents().get_data().decode("latin-1")
    # #1a7f37 (the primary colour) as PDF rgb fractions
    assert re.search(r"0?\.10\d* 0?\.49\d* 0?\.21\d* (rg|RG)", content), "primary colour used"


@pytest.mark.parametrize(
    ("fixture", "mention", "buyer_vat_number"),
    [
        ("reverse_charge_invoice", "Reverse charge – VAT to be accounted for by the customer", "DE136695976"),
        ("export_invoice", "VAT not applicable, article 259-1", None),
    ],
    ids=["reverse-charge", "export"],
)
def test_the_vat_mention_of_a_zero_rated_invoice_is_printed(fixture, mention, buyer_vat_number, request):
    invoice = request.getfixturevalue(fixture)

    text = pdf_text(invoice_pdf_render(invoice=invoice))

    assert squashed(mention) in squashed(text)
    if buyer_vat_number:
        assert buyer_vat_number in text, "reverse charge names the buyer's VAT number"


def rgba_logo() -> bytes:
    image = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, 290, 90), fill=(200, 30, 60, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_transparent_logo_is_in_every_pdf_the_process_renders(branded, branded_customer):
    # given a brand whose logo has transparency (its encoded image is reused across documents)
    branded.logo.save("clear.png", SimpleUploadedFile("clear.png", rgba_logo(), content_type="image/png"))
    from invoices.services.finalize import invoice_finalize
    from tests.invoices.helpers import create_draft

    invoices = [invoice_finalize(invoice=create_draft(branded_customer, [1000 * n]), at=ISSUED_AT) for n in (1, 2, 3)]

    # when the process renders several documents in a row
    pdfs = [invoice_pdf_render(invoice=invoice) for invoice in invoices]

    # then each one carries the logo with its transparency mask, and its own content
    for invoice, pdf in zip(invoices, pdfs, strict=True):
        page = PdfReader(io.BytesIO(pdf)).pages[0]
        images = [xobject.get_object() for xobject in page["/Resources"]["/XObject"].values()]
        logos = [image for image in images if image["/Width"] == 300 and image["/Height"] == 100]
        assert len(logos) == 1 and "/SMask" in logos[0]
        assert logos[0].get_data(), "the image data is written into every PDF"
        assert invoice.number in page.extract_text()


def _fonts(page):
    resources = page["/Resources"]
    found = []
    for obj in resources.get("/Font", {}).values():
        found.append(obj.get_object())
    for xobject in resources.get("/XObject", {}).values():
        nested = xobject.get_object().get("/Resources", {})
        for obj in nested.get("/Font", {}).values():
            found.append(obj.get_object())
    return found


def test_a_long_invoice_runs_over_pages_with_repeated_headers_and_page_numbers(branded_customer):
    from invoices.services.finalize import invoice_finalize
    from tests.invoices.helpers import create_draft

    invoice = invoice_finalize(invoice=create_draft(branded_customer, [1000] * 60), at=ISSUED_AT)

    reader = PdfReader(io.BytesIO(invoice_pdf_render(invoice=invoice)))

    assert len(reader.pages) >= 2
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert "Désignation" in text, "the table header repeats on every page"
        assert f"{number} / {len(reader.pages)}" in text


def test_html_and_pdf_come_from_the_same_template(mixed_invoice):
    lines = list(mixed_invoice.lines.all())
    html = document_html(invoice_document(invoice=mixed_invoice, lines=lines), for_pdf=False)

    assert mixed_invoice.number in html
    assert "#1a7f37" in html
    assert 'src="data:image/png;base64,' in html
    assert "/static/tarif/fonts/liberation-serif/LiberationSerif-Regular.ttf" in html


def test_finalization_renders_and_stores_the_pdf_once(branded_customer, django_capture_on_commit_callbacks):
    from invoices.services.finalize import invoice_finalize
    from tests.invoices.helpers import create_draft

    # when an invoice is finalized and the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoice_finalize(invoice=create_draft(branded_customer, [2000]), at=ISSUED_AT)

    # then its PDF is stored with its sha256
    document = Document.objects.get(invoice=invoice)
    stored = document.file.read()
    assert stored.startswith(b"%PDF")
    import hashlib

    assert hashlib.sha256(stored).hexdigest() == document.sha256 and document.size == len(stored)

    # and it never changes, even when the brand does and rendering runs again
    branded_customer.brand.primary_colour = "#000000"
    branded_customer.brand.save()
    again = invoice_document_store(invoice_id=invoice.pk)
    assert again.pk == document.pk and again.sha256 == document.sha256
    assert Document.objects.filter(invoice=invoice).count() == 1


def test_the_pdf_renders_from_frozen_data_not_from_the_live_brand(mixed_invoice):
    # given the brand and the customer change after the invoice was issued
    brand = mixed_invoice.brand
    brand.legal_name = "Renamed SAS"
    brand.layout = "modern"
    brand.save()
    brand.custom_fields.update(value="CHANGED")

    # then the invoice still renders as issued
    text = pdf_text(invoice_pdf_render(invoice=mixed_invoice))
    assert "Renamed SAS" not in text and "CHANGED" not in text
    assert "Atelier Nuage SAS" in text and "CC-042" in text


def test_the_bulk_issue_path_only_enqueues_one_render_task_for_the_chunk(
    branded, customer_factory, tax_rate, django_capture_on_commit_callbacks, monkeypatch, settings
):
    from invoices import tasks
    from invoices.services.finalize import invoices_issue_bulk
    from tests.invoices.helpers import draft_for

    settings.CELERY_TASK_ALWAYS_EAGER = False  # a real broker: workers render (the task is stubbed here)
    calls = []
    monkeypatch.setattr(tasks.render_pdf, "apply_async", lambda args=(), kwargs=None, **options: calls.append(kwargs))
    customers = [customer_factory(brand=branded) for _ in range(5)]

    with django_capture_on_commit_callbacks(execute=True):
        ids = invoices_issue_bulk(items=[(draft_for(customer), customer) for customer in customers], at=ISSUED_AT)

    assert calls == [{"invoice_ids": ids, "credit_note_ids": []}]
    assert not Document.objects.exists(), "nothing rendered inline"


def test_without_a_broker_bulk_issued_invoices_get_their_pdf_on_first_use(
    branded, customer_factory, tax_rate, django_capture_on_commit_callbacks, settings
):
    from invoices.services.finalize import invoices_issue_bulk
    from tests.invoices.helpers import draft_for

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default: tasks run in-process
    customer = customer_factory(brand=branded)
    with django_capture_on_commit_callbacks(execute=True):
        [invoice_id] = invoices_issue_bulk(items=[(draft_for(customer), customer)], at=ISSUED_AT)
    assert not Document.objects.exists(), "the in-process billing run does not stall on PDFs"

    first = invoice_document_store(invoice_id=invoice_id)
    assert first.file.read().startswith(b"%PDF")
    assert invoice_document_store(invoice_id=invoice_id).sha256 == first.sha256


def test_credit_notes_render_with_their_invoice_reference(mixed_invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        credit_note = credit_note_create(
            invoice=mixed_invoice, amount=5000, reason="order_change", at=ISSUED_AT + timedelta(days=2)
        )

    document = Document.objects.get(credit_note=credit_note)
    text = pdf_text(document.file.read())
    assert "Avoir" in text and credit_note.number in text and mixed_invoice.number in text
    assert "50,00 €" in text
    html = document_html(
        credit_note_document(credit_note=credit_note, lines=list(credit_note.lines.all())), for_pdf=False
    )
    assert "Facture rectifiée" in html
    assert credit_note_document_store(credit_note_id=credit_note.pk).pk == document.pk
