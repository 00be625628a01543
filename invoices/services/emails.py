"""Invoice and credit-note emails in the brand's colours and logo, with the stored PDF.

HTML with a plain-text alternative, both from templates/invoices/email/, in the
document's language; the attachment is the stored Factur-X PDF (rendered now if the
rendering task has not run yet), so the customer receives the very bytes we keep.
"""

from __future__ import annotations

import base64
from email.mime.image import MIMEImage

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext

from invoices.models import CreditNote, Invoice
from invoices.rendering.context import DocumentData, credit_note_document, invoice_document
from invoices.rendering.html import logo_data_uri
from invoices.services.pdf import (
    DocumentNotIssued,
    credit_note_document_store,
    credit_note_refunded_to,
    invoice_pdf_current,
    invoice_settlements,
)


def _message(*, document: DocumentData, pdf: bytes, to: list[str]) -> EmailMultiAlternatives:
    with translation.override(document.language):
        if document.kind == "invoice" and document.payment_status == "paid":
            subject = gettext("Invoice %(number)s") % {"number": document.number}
            intro = gettext("Please find attached invoice %(number)s, paid on %(date)s by %(method)s.") % {
                "number": document.number,
                "date": document.paid_on,
                "method": document.paid_by,
            }
        elif document.kind == "invoice":
            subject = gettext("Invoice %(number)s") % {"number": document.number}
            intro = gettext("Please find attached invoice %(number)s of %(amount)s, due on %(due)s.") % {
                "number": document.number,
                "amount": document.amount_due,
                "due": document.due_date,
            }
        else:
            subject = gettext("Credit note %(number)s") % {"number": document.number}
            intro = gettext("Please find attached credit note %(number)s of %(amount)s for invoice %(invoice)s.") % {
                "number": document.number,
                "amount": document.amount_due,
                "invoice": document.related_invoice,
            }
        subject = f"{subject} – {document.seller.get('name', '')}"
        logo = _inline_logo(document)
        context = {
            "doc": document,
            "subject": subject,
            "intro": intro,
            "logo_src": f"cid:{LOGO_CID}" if logo else "",
            "primary": document.branding["primary_colour"],
            "accent": document.branding["accent_colour"],
        }
        text = render_to_string("invoices/email/document.txt", context)
        html = render_to_string("invoices/email/document.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=to)
    message.attach_alternative(html, "text/html")
    if logo:
        # An inline part referenced by cid: (multipart/mixed keeps the PDF a visible attachment).
        message.attach(logo)
    message.attach(f"{document.number}.pdf", pdf, "application/pdf")
    return message


LOGO_CID = "brand-logo"


def _inline_logo(document: DocumentData) -> MIMEImage | None:
    """The brand's raster logo as an inline part (cid:), which mail clients show, unlike
    data: URIs; SVG logos are left out (few clients render SVG) and the name shows instead."""
    uri = logo_data_uri(document)
    if not uri.startswith(("data:image/png;", "data:image/jpeg;")):
        return None
    media_type, encoded = uri[len("data:") :].split(";base64,", 1)
    image = MIMEImage(base64.b64decode(encoded), _subtype=media_type.split("/")[1])
    image.add_header("Content-ID", f"<{LOGO_CID}>")
    image.add_header("Content-Disposition", "inline", filename=f"logo.{media_type.split('/')[1]}")
    return image


def invoice_email_send(*, invoice: Invoice, to: list[str] | None = None) -> EmailMultiAlternatives:
    """Email an issued invoice to `to` (default: the billing email frozen at issue)."""
    if invoice.status == Invoice.Status.DRAFT:
        raise DocumentNotIssued(
            gettext("Draft invoice #%(pk)s cannot be sent before it is finalized.") % {"pk": invoice.pk}
        )
    # As it stands when sent: a card-paid invoice arrives saying "Paid" (docs/invoices.md).
    document = invoice_document(
        invoice=invoice,
        lines=list(invoice.lines.order_by("position", "pk")),
        settlements=invoice_settlements(invoice=invoice),
    )
    pdf = invoice_pdf_current(invoice=invoice)
    message = _message(document=document, pdf=pdf, to=to or [document.buyer.get("email") or ""])
    message.send()
    return message


def credit_note_email_send(*, credit_note: CreditNote, to: list[str] | None = None) -> EmailMultiAlternatives:
    document = credit_note_document(
        credit_note=credit_note,
        lines=list(credit_note.lines.order_by("pk")),
        refunded_to=credit_note_refunded_to(credit_note=credit_note),
    )
    stored = credit_note_document_store(credit_note_id=credit_note.pk)
    assert stored is not None  # the credit note exists: its PDF is rendered if missing
    with stored.file.open("rb") as handle:
        pdf = handle.read()
    message = _message(document=document, pdf=pdf, to=to or [document.buyer.get("email") or ""])
    message.send()
    return message
