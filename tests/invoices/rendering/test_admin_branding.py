"""Finance staff brand their invoices in the console: logo, colours, font, layout, custom
fields, a live preview with unsaved settings, and PDF downloads of issued documents."""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfReader

from invoices.models import Brand, Document, InvoiceCustomField
from invoices.rendering.logos import LOGO_MAX_BYTES
from tests.conftest import current_totp
from tests.invoices.rendering.conftest import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_console(client, staff_with_totp):
    user, device = staff_with_totp
    client.post("/admin/login/", {"username": user.username, "password": "correct horse battery staple"})
    assert client.post("/admin/otp/verify/", {"otp_token": current_totp(device)}).status_code == 302
    return client


def brand_form(brand: Brand, **overrides) -> dict:
    """What the browser posts from the brand change form (no inline rows unless given)."""
    data = {
        name: getattr(brand, name) or ""
        for name in (
            "name slug legal_name legal_form siren siret vat_number share_capital rcs operation_category "
            "address_line1 address_line2 postal_code city email website timezone default_language "
            "primary_colour accent_colour font layout footer_text_fr footer_text_en payment_instructions_fr "
            "payment_instructions_en iban bic late_payment_rate_fr late_payment_rate_en invoice_number_format "
            "credit_note_number_format"
        ).split()
    }
    data["country"] = str(brand.country)
    if brand.vat_on_debits:
        data["vat_on_debits"] = "on"
    for prefix in ("custom_fields", "line_columns"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0"})
        data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
    data.update(overrides)
    return data


def test_the_brand_page_has_the_preview_pane(staff_console, brand):
    page = staff_console.get(f"/admin/invoices/brand/{brand.pk}/change/").content.decode()

    assert "tarif-brand-preview" in page
    assert "tarif/invoices/brand_preview.js" in page
    assert f"/admin/invoices/brand/{brand.pk}/preview/" in page
    assert "<script>" not in page.split("tarif-brand-preview", 1)[1], "no inline script (CSP)"


def test_the_preview_shows_unsaved_settings_without_saving_them(staff_console, brand):
    data = brand_form(
        brand,
        primary_colour="#8e24aa",
        layout="modern",
        footer_text_en="Unsaved footer",
        _preview_language="en",
        **{
            "custom_fields-TOTAL_FORMS": "1",
            "custom_fields-0-label_en": "Cost centre",
            "custom_fields-0-value": "CC-UNSAVED",
            "line_columns-TOTAL_FORMS": "1",
            "line_columns-0-label_en": "Media published",
            "line_columns-0-metadata_key": "media_published",
        },
    )

    response = staff_console.post(f"/admin/invoices/brand/{brand.pk}/preview/", data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "#8e24aa" in html and "layout-modern" in html and "Unsaved footer" in html
    assert "CC-UNSAVED" in html and "Media published" in html
    assert "Invoice" in html and "Amount due" in html  # English
    brand.refresh_from_db()
    assert brand.primary_colour != "#8e24aa" and not InvoiceCustomField.objects.exists()


def test_the_preview_as_pdf_streams_a_pdf_of_the_sample(staff_console, brand):
    data = brand_form(
        brand,
        _preview_format="pdf",
        **{"custom_fields-TOTAL_FORMS": "1", "custom_fields-0-label_fr": "PO", "custom_fields-0-value": "PO-PREVIEW"},
    )
    data["logo"] = SimpleUploadedFile("logo.png", png_bytes(), content_type="image/png")

    response = staff_console.post(f"/admin/invoices/brand/{brand.pk}/preview/", data)

    assert response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"], "a preview of unsaved settings is never cached"
    reader = PdfReader(io.BytesIO(response.content))
    assert "PO-PREVIEW" in reader.pages[0].extract_text()
    assert len(reader.pages[0].images) == 1, "the unsaved logo is in the preview"


def test_the_pdf_preview_uses_the_unsaved_colour_layout_and_language(staff_console, brand):
    # given staff changing the colour, the layout and the preview language without saving
    data = brand_form(brand, primary_colour="#8e24aa", layout="modern", _preview_format="pdf", _preview_language="en")

    response = staff_console.post(f"/admin/invoices/brand/{brand.pk}/preview/", data)

    # then the PDF shows them: English texts, the modern band painted in the new colour
    page = PdfReader(io.BytesIO(response.content)).pages[0]
    assert "Amount due" in page.extract_text()
    content = page.get_contents().get_data().decode("latin-1")
    # #8e24aa as PDF rgb fractions (0.557 0.141 0.667)
    assert re.search(r"0?\.55\d* 0?\.14\d* 0?\.66\d* (rg|RG)", content), "the unsaved colour is painted"
    brand.refresh_from_db()
    assert brand.primary_colour != "#8e24aa" and brand.layout != "modern"


def test_the_preview_of_a_new_brand_works_before_it_exists(staff_console, brand):
    data = brand_form(brand, slug="new-brand", name="Brand New", invoice_number_format="N-{seq}")

    response = staff_console.post("/admin/invoices/brand/preview/", data)

    assert response.status_code == 200 and "Brand New" in response.content.decode()


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("logo.png", b"%PDF-1.4 not an image at all", "not an image we can read"),
        ("logo.png", png_bytes() + b"\0" * LOGO_MAX_BYTES, "the limit is 1024 kB"),
        ("logo.png", png_bytes(size=(5000, 100)), "at most 4000 pixels per side"),
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "may not contain scripts",
        ),
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="4" height="4"/></svg>',
            "event handler (onload)",
        ),
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
            b'<image xlink:href="https://evil.example/x.png"/></svg>',
            "must be self-contained",
        ),
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>x</p></foreignObject></svg>',
            "foreignobject",
        ),
        ("logo.svg", b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]><svg>&x;</svg>', "DTD"),
    ],
    ids=[
        "not-an-image",
        "oversized-file",
        "oversized-dimensions",
        "svg-script",
        "svg-onload",
        "svg-href",
        "svg-foreign",
        "svg-entity",
    ],
)
def test_bad_logo_uploads_are_refused_with_a_clear_error(staff_console, brand, filename, content, message):
    data = brand_form(brand)
    data["logo"] = SimpleUploadedFile(filename, content)

    response = staff_console.post(f"/admin/invoices/brand/{brand.pk}/change/", data)

    assert response.status_code == 200, "the form comes back with the error"
    assert message in response.content.decode().replace("&lt;", "<").replace("&gt;", ">")
    brand.refresh_from_db()
    assert not brand.logo


def test_a_clean_svg_logo_is_accepted(staff_console, brand, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#c00"/></svg>'
    data = brand_form(brand, font="dejavu-sans", layout="modern")
    data["logo"] = SimpleUploadedFile("logo.svg", svg, content_type="image/svg+xml")

    response = staff_console.post(f"/admin/invoices/brand/{brand.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    brand.refresh_from_db()
    assert brand.logo.name.endswith(".svg") and brand.font == "dejavu-sans" and brand.layout == "modern"


def test_issued_documents_download_as_their_stored_pdf(staff_console, mixed_invoice):
    page = staff_console.get(f"/admin/invoices/invoice/{mixed_invoice.pk}/change/").content.decode()
    response = staff_console.get(f"/admin/invoices/invoice/{mixed_invoice.pk}/pdf/")

    assert f"/admin/invoices/invoice/{mixed_invoice.pk}/pdf/" in page
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{mixed_invoice.number}.pdf"'
    # an invoice is personal data: never kept by a shared cache nor left on the staff's disk
    cache_control = {directive.strip() for directive in response["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= cache_control
    document = Document.objects.get(invoice=mixed_invoice)
    assert response["ETag"] == f'"{document.sha256}"'
    assert int(response["Content-Length"]) == len(response.content) == document.size
    again = staff_console.get(f"/admin/invoices/invoice/{mixed_invoice.pk}/pdf/")
    assert again.content == response.content, "the same stored bytes every time"


def test_the_download_action_zips_several_invoices(staff_console, mixed_invoice, reverse_charge_invoice):
    import zipfile

    response = staff_console.post(
        "/admin/invoices/invoice/",
        {"action": "download_pdf", "_selected_action": [mixed_invoice.pk, reverse_charge_invoice.pk]},
    )

    assert response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert sorted(names) == sorted([f"{mixed_invoice.number}.pdf", f"{reverse_charge_invoice.number}.pdf"])


def test_credit_note_pdf_download(staff_console, mixed_invoice):
    from datetime import timedelta

    from invoices.services.credit_notes import credit_note_create
    from tests.invoices.helpers import ISSUED_AT

    credit_note = credit_note_create(invoice=mixed_invoice, amount=1000, reason="other", at=ISSUED_AT + timedelta(1))

    page = staff_console.get(f"/admin/invoices/creditnote/{credit_note.pk}/change/").content.decode()
    response = staff_console.get(f"/admin/invoices/creditnote/{credit_note.pk}/pdf/")

    assert f"/admin/invoices/creditnote/{credit_note.pk}/pdf/" in page
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{credit_note.number}.pdf"'
    assert credit_note.number in PdfReader(io.BytesIO(response.content)).pages[0].extract_text()


def test_customer_custom_fields_are_added_in_the_console(staff_console, branded_customer):
    response = staff_console.post(
        "/admin/invoices/invoicecustomfield/add/",
        {"customer": branded_customer.pk, "label": "Cost centre", "value": "CC-7", "position": 0},
    )
    missing_customer = staff_console.post(
        "/admin/invoices/invoicecustomfield/add/", {"label": "Cost centre", "value": "CC-8", "position": 0}
    )

    assert response.status_code == 302
    assert InvoiceCustomField.objects.filter(customer=branded_customer, value="CC-7").exists()
    assert missing_customer.status_code == 200 and not InvoiceCustomField.objects.filter(value="CC-8").exists()


def test_a_draft_has_no_pdf_yet(staff_console, branded_customer):
    from tests.invoices.helpers import create_draft

    draft = create_draft(branded_customer, [1000])

    response = staff_console.get(f"/admin/invoices/invoice/{draft.pk}/pdf/")

    assert response.status_code == 302 and not Document.objects.exists()


def test_staff_email_an_invoice_from_the_list(staff_console, mixed_invoice, mailoutbox):
    response = staff_console.post(
        "/admin/invoices/invoice/", {"action": "email_to_customer", "_selected_action": [mixed_invoice.pk]}
    )

    assert response.status_code == 302
    [message] = mailoutbox
    assert message.attachments[-1][0] == f"{mixed_invoice.number}.pdf"


def test_the_brand_page_edits_each_printed_text_in_both_languages(staff_console, brand):
    page = staff_console.get(f"/admin/invoices/brand/{brand.pk}/change/").content.decode()

    for field in ("footer_text", "payment_instructions", "late_payment_rate"):
        assert f'name="{field}_fr"' in page and f'name="{field}_en"' in page
    assert "tarif/invoices/brand_languages.js" in page  # the language tabs, no inline script


def test_an_english_footer_saved_in_the_console_is_printed_on_english_documents_only(staff_console, brand):
    response = staff_console.post(
        f"/admin/invoices/brand/{brand.pk}/change/",
        brand_form(brand, footer_text_fr="Merci !", footer_text_en="Thank you!"),
    )

    assert response.status_code == 302
    brand.refresh_from_db()
    assert (brand.footer_text_fr, brand.footer_text_en) == ("Merci !", "Thank you!")
