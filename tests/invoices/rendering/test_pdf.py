"""The PDF renderer's process-wide state: what one render changes must not leak into the worker."""

from __future__ import annotations

import gc

import pytest

from invoices.rendering import pdf


def test_a_render_gives_the_garbage_collector_back():
    assert gc.isenabled()

    output = pdf.html_to_pdf("<p>Facture F-1</p>", pdf_a=False)

    assert output.startswith(b"%PDF") and gc.isenabled()


def test_a_failed_render_gives_the_garbage_collector_back_too(monkeypatch):
    def broken_write(self, **options):
        assert not gc.isenabled(), "paused while WeasyPrint works"
        raise RuntimeError("layout failed")

    monkeypatch.setattr(pdf._DocumentHTML, "write_pdf", broken_write)

    with pytest.raises(RuntimeError, match="layout failed"):
        pdf.html_to_pdf("<p>Facture F-1</p>")
    assert gc.isenabled(), "a worker that failed one document still collects garbage"
