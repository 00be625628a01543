"""Invoice emails carry the brand and the stored PDF."""

from __future__ import annotations

import pytest

from invoices.models import Document
from invoices.services.emails import invoice_email_send

pytestmark = pytest.mark.django_db


def test_the_invoice_email_is_branded_html_with_text_and_the_pdf(mixed_invoice, mailoutbox):
    invoice_email_send(invoice=mixed_invoice)

    [message] = mailoutbox
    assert message.to == [mixed_invoice.issued_snapshot["buyer"]["email"]]
    assert message.subject == f"Facture {mixed_invoice.number} – Atelier Nuage"
    assert mixed_invoice.number in message.body and "Montant dû" in message.body
    [(html, media_type)] = message.alternatives
    assert media_type == "text/html"
    assert "#1a7f37" in html and 'src="cid:brand-logo"' in html  # brand colour and logo
    logo, (filename, pdf, pdf_type) = message.attachments
    assert logo["Content-ID"] == "<brand-logo>" and logo.get_content_type() == "image/png"
    assert filename == f"{mixed_invoice.number}.pdf" and pdf_type == "application/pdf"
    assert pdf == Document.objects.get(invoice=mixed_invoice).file.read(), "the stored PDF, as kept"
    raw = message.message().as_bytes()
    assert b"multipart/alternative" in raw and b"Content-ID: <brand-logo>" in raw
