"""Factur-X / ZUGFeRD: the CII XML (EN 16931 profile) of an issued invoice or credit
note, embedded into its PDF/A-3 with the `factur-x` library (which validates the XML
against the XSD on the way).

The XML itself is `cii.build_cii_xml` over the syntax-neutral `en16931` content (shared
with the standalone CII D16B and UBL 2.1 flows of `einvoice.py`): see those modules for
the EN 16931 and French CIUS rules that shape it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from invoices.rendering.cii import build_cii_xml
from invoices.rendering.en16931 import credit_note_document, invoice_document


def invoice_cii_xml(*, invoice: Any, lines: Sequence[Any], paid: int = 0, routing_id: str = "") -> bytes:
    """`paid`: money received since issue (0 for the original as issued), see `en16931.invoice_document`."""
    return build_cii_xml(invoice_document(invoice=invoice, lines=lines, paid=paid, routing_id=routing_id))


def credit_note_cii_xml(*, credit_note: Any, lines: Sequence[Any], routing_id: str = "") -> bytes:
    return build_cii_xml(credit_note_document(credit_note=credit_note, lines=lines, routing_id=routing_id))


def embed_facturx(*, pdf: bytes, xml: bytes, lang: str) -> bytes:
    """A Factur-X PDF (PDF/A-3 + factur-x.xml), the XML checked against the EN 16931 XSD."""
    # deferred: factur-x loads its XSD schemas on import; only building a PDF needs it
    from facturx import generate_from_binary

    return generate_from_binary(pdf, xml, flavor="factur-x", level="en16931", check_xsd=True, lang=lang)
