"""HTML of a document: the same Django templates feed the browser, emails and WeasyPrint."""

from __future__ import annotations

import base64
from functools import lru_cache

from django.conf import settings
from django.core.files.storage import default_storage
from django.template.loader import get_template, select_template
from django.templatetags.static import static
from django.utils import translation

from invoices.rendering.context import DocumentData
from invoices.rendering.logos import LOGO_MAX_BYTES, logo_media_type

LAYOUTS = ("classic", "modern")


def templates_for(document: DocumentData, *, brand_slug: str = "") -> list[str]:
    """Brand-specific template first, then the layout, then the default layout."""
    layout = document.branding.get("layout")
    names = [f"invoices/document/brands/{brand_slug}/document.html"] if brand_slug else []
    if layout in LAYOUTS:
        names.append(f"invoices/document/layouts/{layout}.html")
    names.append("invoices/document/layouts/classic.html")
    return names


@lru_cache(maxsize=64)
def _stored_logo_data_uri(name: str, media_root: str) -> str:
    # Logos are stored under unique names and never rewritten, so caching by name is safe.
    try:
        with default_storage.open(name, "rb") as stored:
            data = stored.read(LOGO_MAX_BYTES + 1)
    except OSError:
        return ""
    try:
        media_type = logo_media_type(data)
    except Exception:  # noqa: BLE001 - a stored logo that no longer validates is not shown
        return ""
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def logo_data_uri(document: DocumentData) -> str:
    """The logo inlined as a data: URI: the same markup works in a browser, an email
    client and WeasyPrint, and nothing is fetched."""
    if document.extra.get("logo_data_uri"):
        return document.extra["logo_data_uri"]
    name = document.branding.get("logo")
    return _stored_logo_data_uri(name, str(settings.MEDIA_ROOT)) if name else ""


def _style_context(document: DocumentData, *, for_pdf: bool) -> dict:
    font = document.font
    return {
        "for_pdf": for_pdf,
        "font": font,
        "font_regular_url": static(font.regular),
        "font_bold_url": static(font.bold),
        "primary": document.branding["primary_colour"],
        "accent": document.branding["accent_colour"],
    }


def document_css(document: DocumentData, *, for_pdf: bool, brand_slug: str = "") -> str:
    """The document's stylesheet: the shared rules, then the layout's (or the brand's own)."""
    layout = document.branding.get("layout")
    layout_css = [f"invoices/document/brands/{brand_slug}/document.css"] if brand_slug else []
    layout_css += [f"invoices/document/layouts/{layout if layout in LAYOUTS else 'classic'}.css"]
    context = _style_context(document, for_pdf=for_pdf)
    with translation.override(document.language):
        return "\n".join(
            (
                get_template("invoices/document/styles.css").render(context),
                select_template(layout_css).render(context),
            )
        )


def document_html(document: DocumentData, *, for_pdf: bool, brand_slug: str = "", inline_css: bool = True) -> str:
    """The document as HTML. `inline_css=False` leaves the stylesheet out: the PDF
    renderer passes it separately (parsed once, cached; see invoices.rendering.pdf)."""
    context = {
        **_style_context(document, for_pdf=for_pdf),
        "doc": document,
        "logo_src": logo_data_uri(document),
        "column_count": 5 + len(document.line_columns),
        "inline_css": document_css(document, for_pdf=for_pdf, brand_slug=brand_slug) if inline_css else "",
    }
    with translation.override(document.language):
        return select_template(templates_for(document, brand_slug=brand_slug)).render(context)


def document_pdf(document: DocumentData, *, brand_slug: str = "", pdf_a: bool = True) -> bytes:
    """The document as PDF (PDF/A-3b unless `pdf_a` is False), same templates as the HTML."""
    # deferred: imports WeasyPrint (about a second); only rendering a PDF loads it
    from invoices.rendering.pdf import html_to_pdf

    html = document_html(document, for_pdf=True, brand_slug=brand_slug, inline_css=False)
    return html_to_pdf(html, css=document_css(document, for_pdf=True, brand_slug=brand_slug), pdf_a=pdf_a)
