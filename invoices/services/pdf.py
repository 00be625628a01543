"""Issued documents as files: render once after finalization, store, never replace.

`documents_render_on_commit` is what finalization calls: it records a durable hand-off per
document in the issuing transaction and only ENQUEUES (one Celery task per call, with all
the ids) after the transaction commits, so the bulk issue path never renders inline and a
crash before the enqueue is caught up by the hand-off sweeper (config/ops/handoffs.py).
The task calls `documents_store` (`invoice_document_store` / `credit_note_document_store`),
which render the Factur-X PDF (PDF/A-3b with the EN 16931 CII XML) from frozen data and
keep the first stored file for good: a finalized invoice's PDF never changes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from billing.models import Payment, Refund
from config.errors import DomainConflict
from config.jobs import enqueue
from config.ops.handoffs import Kind, handoffs_complete, handoffs_record
from invoices.models import Brand, CreditNote, Document, Invoice
from invoices.rendering.context import Settlement, credit_note_document, invoice_document
from invoices.rendering.facturx import credit_note_cii_xml, embed_facturx, invoice_cii_xml
from invoices.rendering.html import document_pdf
from invoices.services.documents import local_date

logger = logging.getLogger(__name__)


class DocumentNotIssued(DomainConflict, ValueError):
    code = "not_issued"

    """Drafts have no document: they have no number and may still change."""


def invoice_settlements(*, invoice: Invoice) -> list[Settlement]:
    """The succeeded payments of an invoice, oldest first, as the documents show them;
    amounts capped so that together they never exceed what the invoice recorded as paid
    (an overpayment's excess went to the customer balance, not to this invoice)."""
    timezone = (invoice.issued_snapshot or {}).get("seller", {}).get("timezone") or "Europe/Paris"
    left = invoice.amount_paid
    settlements = []
    payments = (
        Payment.objects.filter(invoice_id=invoice.pk, status=Payment.Status.SUCCEEDED)
        .select_related("payment_method")
        .order_by("settled_at", "pk")
    )
    for payment in payments:
        amount = min(payment.amount, left)
        if amount <= 0:
            break
        left -= amount
        method = payment.payment_method
        moment = payment.settled_at or payment.attempted_at
        settlements.append(
            Settlement(
                amount=amount,
                on=local_date(moment, timezone) if moment else None,
                method=payment.method,
                last4=(method.last4 or method.iban_last4) if method is not None else "",
                card_brand=method.brand if method is not None else "",
            )
        )
    return settlements


def invoice_pdf_render(*, invoice: Invoice, as_issued: bool = False, routing_id: str = "") -> bytes:
    """The Factur-X PDF of an issued invoice, rendered from its frozen data (not stored).

    `as_issued`: the original, as it stood at issue (what `invoice_document_store` keeps);
    otherwise the invoice as it stands now, with the payments received since issue (Paid /
    Partly paid, no transfer instructions once nothing is due) and the same state in its
    Factur-X XML (BT-113 paid amount, BT-115 amount due). `routing_id`: the buyer's
    electronic address for a PA flow (BT-49, see invoices/rendering/en16931.py).
    """
    if invoice.status == Invoice.Status.DRAFT or not invoice.number:
        raise DocumentNotIssued(gettext("Draft invoice #%(pk)s has no PDF until it is finalized.") % {"pk": invoice.pk})

    lines = list(invoice.lines.order_by("position", "pk"))
    settlements = None if as_issued else invoice_settlements(invoice=invoice)
    document = invoice_document(invoice=invoice, lines=lines, settlements=settlements)
    pdf = document_pdf(document, brand_slug=_brand_slug(invoice.brand_id))
    paid = 0 if as_issued else invoice_paid_since_issue(invoice)
    xml = invoice_cii_xml(invoice=invoice, lines=lines, paid=paid, routing_id=routing_id)
    return embed_facturx(pdf=pdf, xml=xml, lang=document.language)


def invoice_paid_since_issue(invoice: Invoice) -> int:
    """Money received on the invoice since issue (payments), at most its amount due."""
    return min(invoice.amount_paid, invoice.amount_due)


def invoice_changed_since_issue(invoice: Invoice) -> bool:
    """Whether anything was received or credited since issue (the stored original no longer tells it all)."""
    return bool(invoice.amount_paid) or invoice.amount_remaining != invoice.amount_due


def invoice_pdf_current(*, invoice: Invoice) -> bytes:
    """The PDF customers get (portal, API, emails): the stored original while nothing
    happened since issue, else rendered now with its payment status (docs/invoices.md)."""
    if not invoice_changed_since_issue(invoice):
        stored = invoice_document_store(invoice_id=invoice.pk)
        if stored is not None:
            with stored.file.open("rb") as handle:
                return handle.read()
    return invoice_pdf_render(invoice=invoice)


def credit_note_refunded_to(*, credit_note: CreditNote) -> Settlement | None:
    """The payment a credit note's refund share went back to (from the refund that issued it)."""
    if not credit_note.refunded:
        return None
    refund = Refund.objects.select_related("payment__payment_method").filter(credit_note_id=credit_note.pk).first()
    if refund is None:
        return None
    payment, method = refund.payment, refund.payment.payment_method
    timezone = (credit_note.issued_snapshot or {}).get("seller", {}).get("timezone") or "Europe/Paris"
    moment = refund.executed_at or credit_note.issued_at
    return Settlement(
        amount=refund.amount,
        on=local_date(moment, timezone),
        method=payment.method,
        last4=(method.last4 or method.iban_last4) if method is not None else "",
    )


def credit_note_pdf_render(*, credit_note: CreditNote, routing_id: str = "") -> bytes:
    lines = list(credit_note.lines.order_by("pk"))
    document = credit_note_document(
        credit_note=credit_note, lines=lines, refunded_to=credit_note_refunded_to(credit_note=credit_note)
    )
    pdf = document_pdf(document, brand_slug=_brand_slug(credit_note.brand_id))
    return embed_facturx(
        pdf=pdf,
        xml=credit_note_cii_xml(credit_note=credit_note, lines=lines, routing_id=routing_id),
        lang=document.language,
    )


def _brand_slug(brand_id: int) -> str:
    # The slug only picks an optional brand-specific template; it is not printed.

    return Brand.objects.filter(pk=brand_id).values_list("slug", flat=True).first() or ""


def _store(*, owner: dict, pdf: bytes, name: str) -> Document:
    digest = hashlib.sha256(pdf).hexdigest()
    document = Document(**owner, sha256=digest, size=len(pdf))
    document.file.save(name, ContentFile(pdf), save=False)
    try:
        with transaction.atomic():
            document.save()
    except IntegrityError:
        # Another worker stored it first: theirs stays, ours goes.
        document.file.delete(save=False)
        return Document.objects.get(**owner)
    return document


def invoice_document_store(*, invoice_id: int) -> Document | None:
    """The stored PDF of an issued invoice, rendered and stored the first time only."""
    existing = Document.objects.filter(invoice_id=invoice_id).first()
    if existing is not None:
        return existing
    invoice = Invoice.objects.filter(pk=invoice_id).exclude(status=Invoice.Status.DRAFT).first()
    if invoice is None:
        return None
    pdf = invoice_pdf_render(invoice=invoice, as_issued=True)
    return _store(owner={"invoice_id": invoice.pk}, pdf=pdf, name=f"{_safe(invoice.number)}.pdf")


def credit_note_document_store(*, credit_note_id: int) -> Document | None:
    existing = Document.objects.filter(credit_note_id=credit_note_id).first()
    if existing is not None:
        return existing
    credit_note = CreditNote.objects.filter(pk=credit_note_id).first()
    if credit_note is None:
        return None
    pdf = credit_note_pdf_render(credit_note=credit_note)
    return _store(owner={"credit_note_id": credit_note.pk}, pdf=pdf, name=f"{_safe(credit_note.number)}.pdf")


def _safe(number: str) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "-" for char in number)


def _tasks_run_in_process() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


def documents_render_on_commit(
    *, invoice_ids: Iterable[int] = (), credit_note_ids: Iterable[int] = (), bulk: bool = False
) -> None:
    """Queue ONE rendering task for these documents once the transaction commits.

    `bulk` (the billing run's chunks): with a broker, one task per chunk; without one
    (the embedded default, where tasks run in-process) rendering thousands of PDFs
    inline would stall the run, so bulk-issued documents are rendered and stored on
    first use instead (download, email), which is the same once-only path.
    TARIF_RENDER_DOCUMENTS = False turns rendering at issue off altogether.
    """
    invoice_ids, credit_note_ids = list(invoice_ids), list(credit_note_ids)
    if not (invoice_ids or credit_note_ids) or not getattr(settings, "TARIF_RENDER_DOCUMENTS", True):
        return
    if bulk and _tasks_run_in_process():
        return

    # Durable first (rows in this transaction, swept if the enqueue below never happens),
    # then the fast path: one task for all of them once the transaction commits.
    handoffs_record(kind=Kind.RENDER_INVOICE, object_ids=invoice_ids)
    handoffs_record(kind=Kind.RENDER_CREDIT_NOTE, object_ids=credit_note_ids)
    transaction.on_commit(
        lambda: enqueue("invoices.render_pdf", kwargs={"invoice_ids": invoice_ids, "credit_note_ids": credit_note_ids}),
        robust=True,
    )


def documents_store(*, invoice_ids: Iterable[int] = (), credit_note_ids: Iterable[int] = ()) -> int:
    """Render and store these issued documents (stored ones are kept); returns how many exist.

    Each document's hand-off is marked done as soon as it is stored, so a retry after a
    storage error renders only what is still missing.
    """
    stored = 0
    for invoice_id in invoice_ids:
        stored += invoice_document_store(invoice_id=invoice_id) is not None
        handoffs_complete(kind=Kind.RENDER_INVOICE, object_ids=[invoice_id])
    for credit_note_id in credit_note_ids:
        stored += credit_note_document_store(credit_note_id=credit_note_id) is not None
        handoffs_complete(kind=Kind.RENDER_CREDIT_NOTE, object_ids=[credit_note_id])
    return stored
