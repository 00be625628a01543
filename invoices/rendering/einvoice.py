"""One entry point for the electronic invoice of an issued document, in the syntax asked.

`document_einvoice(kind=..., document=..., syntax=...)` returns the file the PA flow
carries: Factur-X (the PDF/A-3 with its CII XML, rendered as for the customer), UBL 2.1
or CII D16B XML. `customer_einvoice_syntax` resolves a customer's setting ("auto": the
PA account's default, else Factur-X).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from django.utils.translation import gettext

from config.errors import DomainError
from invoices.rendering.cii import build_cii_xml
from invoices.rendering.en16931 import EInvoiceDocument, credit_note_document, invoice_document
from invoices.rendering.ubl import build_ubl_xml
from invoices.services.pdf import credit_note_pdf_render, invoice_pdf_render

Kind = Literal["invoice", "credit_note"]
Syntax = Literal["factur-x", "ubl", "cii"]
SYNTAXES: Final = ("factur-x", "ubl", "cii")
DEFAULT_SYNTAX: Final = "factur-x"


class UnknownEInvoiceSyntax(DomainError):
    code = "einvoice_syntax_unknown"
    http_status = 400


@dataclass(frozen=True)
class EInvoiceFile:
    filename: str
    content: bytes
    media_type: str


def customer_einvoice_syntax(*, customer: Any, pa_default: str = "") -> Syntax:
    """The customer's syntax; "auto" takes the PA account's default (`pa_default`), else Factur-X."""
    chosen = getattr(customer, "einvoice_syntax", "auto") or "auto"
    if chosen == "auto":
        chosen = pa_default if pa_default in SYNTAXES else DEFAULT_SYNTAX
    if chosen not in SYNTAXES:
        raise UnknownEInvoiceSyntax(gettext("Unknown e-invoice syntax: %(syntax)s") % {"syntax": chosen})
    return chosen  # type: ignore[return-value]


def _content(*, kind: Kind, document: Any, routing_id: str) -> EInvoiceDocument:
    if kind == "invoice":
        lines = list(document.lines.select_related("price__product").order_by("position", "pk"))
        return invoice_document(invoice=document, lines=lines, routing_id=routing_id)
    lines = list(document.lines.select_related("invoice_line__price__product").order_by("pk"))
    return credit_note_document(credit_note=document, lines=lines, routing_id=routing_id)


def document_einvoice(*, kind: Kind, document: Any, syntax: Syntax, routing_id: str = "") -> EInvoiceFile:
    """The e-invoice of an issued invoice or credit note, as issued (BT-113/115 of the original)."""
    if kind not in ("invoice", "credit_note"):
        raise UnknownEInvoiceSyntax(gettext("Unknown document kind: %(kind)s") % {"kind": kind})
    if syntax not in SYNTAXES:
        raise UnknownEInvoiceSyntax(gettext("Unknown e-invoice syntax: %(syntax)s") % {"syntax": syntax})
    stem = f"{document.number}"
    if syntax == "factur-x":
        if kind == "invoice":
            content = invoice_pdf_render(invoice=document, as_issued=True, routing_id=routing_id)
        else:
            content = credit_note_pdf_render(credit_note=document, routing_id=routing_id)
        return EInvoiceFile(f"{stem}.pdf", content, "application/pdf")
    data = _content(kind=kind, document=document, routing_id=routing_id)
    if syntax == "ubl":
        return EInvoiceFile(f"{stem}-ubl.xml", build_ubl_xml(data), "application/xml")
    return EInvoiceFile(f"{stem}-cii.xml", build_cii_xml(data), "application/xml")
