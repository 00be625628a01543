"""Rendering speed of an issued invoice's PDF: HTML -> WeasyPrint PDF/A-3b -> Factur-X
(EN 16931 XML, XSD-checked) -> sha256, i.e. what the `invoices.render_pdf` task does
per invoice minus the database read and the file write.

    .venv/bin/python bench/render_pdf.py --invoices 200

The invoice is a one-page branded invoice (PNG logo, bundled Open Sans, custom fields,
an extra line column; `--logo transparent` for a detailed 600x200 RGBA logo) built in
memory from a brand, so no database is needed. Prints ms_per_pdf (median over --invoices
renders in a warm process, after a warm-up render) and pdfs_per_second with --workers
processes (2 by default) splitting --invoices.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def _logo_png(kind: str) -> bytes:
    from PIL import Image, ImageDraw

    buffer = io.BytesIO()
    if kind == "transparent":
        # What brands upload: a wider RGBA logo with anti-aliased shapes on transparency.
        image = Image.new("RGBA", (600, 200), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        for x in range(0, 600, 3):
            draw.line([(x, 0), (600 - x, 200)], fill=(x % 255, 80, 160, 200))
        draw.text((20, 80), "Atelier Nuage", fill=(0, 0, 0, 255))
    else:
        image = Image.new("RGB", (360, 120), (40, 81, 163))
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _setup(logo_kind: str = "opaque"):
    import django

    django.setup()
    import base64

    from invoices.models import Brand
    from invoices.rendering.context import invoice_document, sample_invoice

    logo = "data:image/png;base64," + base64.b64encode(_logo_png(logo_kind)).decode()
    brand = Brand(
        slug="bench",
        name="Atelier Nuage",
        legal_name="Atelier Nuage SAS",
        legal_form="SAS",
        address_line1="42 rue de la Paix",
        postal_code="75002",
        city="Paris",
        country="FR",
        siren="552100554",
        siret="55210055400013",
        vat_number="FR03552100554",
        share_capital="50 000 €",
        rcs="RCS Paris 552 100 554",
        iban="FR7630006000011234567890189",
        bic="AGRIFRPP",
        font="open-sans",
        layout="classic",
        footer_text="Merci de votre confiance.",
    )
    invoice, lines = sample_invoice(
        brand=brand,
        language="fr",
        lines=5,
        custom_fields=[{"label": "Cost centre", "value": "CC-042"}],
        line_columns=[{"key": "media_published", "label": "Media published"}],
    )

    def render() -> bytes:
        from invoices.rendering.facturx import embed_facturx, invoice_cii_xml
        from invoices.rendering.html import document_pdf

        document = invoice_document(invoice=invoice, lines=lines)
        document.extra["logo_data_uri"] = logo
        pdf = document_pdf(document)
        pdf = embed_facturx(pdf=pdf, xml=invoice_cii_xml(invoice=invoice, lines=lines), lang="fr")
        hashlib.sha256(pdf).hexdigest()
        return pdf

    import logging

    logging.getLogger("factur-x").setLevel(logging.WARNING)
    return render


def _worker(count: int, logo_kind: str, start_event, queue) -> None:
    render = _setup(logo_kind)
    render()  # warm-up: fonts, templates, image cache
    start_event.wait()
    for _ in range(count):
        render()
    queue.put(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--logo",
        choices=("opaque", "transparent"),
        default="opaque",
        help="opaque: a flat 360x120 RGB PNG; transparent: a 600x200 RGBA PNG with detail",
    )
    arguments = parser.parse_args()

    render = _setup(arguments.logo)
    first = time.perf_counter()
    pdf = render()
    cold_ms = (time.perf_counter() - first) * 1000
    timings, cpu_timings = [], []
    for _ in range(arguments.invoices):
        started, cpu_started = time.perf_counter(), time.process_time()
        render()
        timings.append((time.perf_counter() - started) * 1000)
        cpu_timings.append((time.process_time() - cpu_started) * 1000)
    median = statistics.median(timings)

    context = multiprocessing.get_context("fork")
    start_event = context.Event()
    queue = context.Queue()
    share = [arguments.invoices // arguments.workers] * arguments.workers
    share[0] += arguments.invoices - sum(share)
    processes = [context.Process(target=_worker, args=(n, arguments.logo, start_event, queue)) for n in share]
    for process in processes:
        process.start()
    time.sleep(3)  # let every worker set up and warm up before the clock starts
    began = time.perf_counter()
    start_event.set()
    ends = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    parallel = arguments.invoices / (max(ends) - began)

    print(f"pdf_bytes: {len(pdf)}")
    print(f"first_render_ms: {cold_ms:.1f}")
    print(f"ms_per_pdf: {median:.1f}")
    print(f"p90_ms: {statistics.quantiles(timings, n=10)[-1]:.1f}")
    # CPU time of this process: what the render costs when the machine is not shared.
    print(f"cpu_ms_per_pdf: {statistics.median(cpu_timings):.1f}")
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")
    print(f"pdfs_per_second_1_worker: {1000 / statistics.mean(timings):.1f}")
    print(f"pdfs_per_second: {parallel:.1f} ({arguments.workers} workers)")


if __name__ == "__main__":
    main()
