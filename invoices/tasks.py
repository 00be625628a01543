"""Celery tasks of the invoices app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from invoices.services.pdf import documents_store


@shared_task(name="invoices.render_pdf", bind=True, acks_late=True, max_retries=5, default_retry_delay=30)
def render_pdf(self, *, invoice_ids: list[int] = (), credit_note_ids: list[int] = ()) -> int:
    """Render and store the PDFs of these issued documents (already stored ones are kept).

    Idempotent: a retry or a duplicate delivery renders only what is still missing.
    """
    try:
        return documents_store(invoice_ids=invoice_ids, credit_note_ids=credit_note_ids)
    except OSError as error:  # storage trouble: try again later
        raise self.retry(exc=error) from error
