"""PDF with WeasyPrint, offline: a URL fetcher that serves static files and data: URIs
and refuses everything else, so a document never reaches the network."""

from __future__ import annotations

import logging
import mimetypes
import re
import threading
from functools import lru_cache
from typing import Final

from django.conf import settings
from django.contrib.staticfiles import finders
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

# A base URL of our own: relative and root-relative URLs in the templates resolve under it.
BASE_URL: Final = "https://tarif.invalid/"


class OfflineURLFetcher(URLFetcher):
    """Static files (through Django's finders) and data: URIs; anything else raises."""

    def fetch(self, url, headers=None):
        if url.startswith("data:"):
            return super().fetch(url, headers)
        static_prefix = BASE_URL.rstrip("/") + settings.STATIC_URL
        if url.startswith(static_prefix):
            relative = url[len(static_prefix) :].split("?", 1)[0].split("#", 1)[0]
            path = _static_path(relative)
            if path:
                with open(path, "rb") as handle:
                    body = handle.read()
                media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
                return URLFetcherResponse(url, body, {"Content-Type": media_type})
        raise ValueError(f"documents render offline; refused to fetch {url[:80]!r}")


@lru_cache(maxsize=64)
def _static_path(relative: str) -> str | None:
    if ".." in relative.split("/"):
        return None
    return finders.find(relative)


# WeasyPrint logs every rendering step at INFO: too chatty for a worker rendering thousands.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

_fetcher = OfflineURLFetcher()
_font_config = FontConfiguration()
_render_lock = threading.Lock()
# WeasyPrint's image/font cache, kept for the life of the process (fonts and logos repeat).
_cache: dict = {}


# The few user-agent rules our document templates rely on. WeasyPrint's full HTML5
# stylesheet (hundreds of rules, matched against every element) costs ~10 % of a render;
# the templates style everything else themselves. Should WeasyPrint rename its private
# `_ua_stylesheets` hook, the full stylesheet simply applies again (same look, slower).
_DOCUMENT_UA_CSS: Final = """
head, style, title, meta, script, template { display: none }
html, body, div, p, h1, h2, h3 { display: block }
body { margin: 8px }
p { margin-top: 1em; margin-bottom: 1em }
h1 { font-size: 2em; font-weight: bold; margin-top: .67em; margin-bottom: .67em }
strong, b, th { font-weight: bold }
th { text-align: center }
table { display: table; box-sizing: border-box; border-spacing: 2px; border-collapse: separate; text-indent: initial }
thead { display: table-header-group; vertical-align: middle }
tbody { display: table-row-group; vertical-align: middle }
tr { display: table-row; vertical-align: inherit }
td, th { display: table-cell; padding: 1px; vertical-align: inherit }
br::before { content: "\\A"; white-space: pre-line }
img { overflow: hidden }
"""
_document_ua = None


class _DocumentHTML(HTML):
    def _ua_stylesheets(self, forms=False):
        global _document_ua
        if _document_ua is None:
            _document_ua = CSS(string=_DOCUMENT_UA_CSS)
        return [_document_ua]


# Template indentation between tags: whitespace boxes WeasyPrint would lay out for nothing.
_INDENTATION = re.compile(r">\s*\n\s*<")


@lru_cache(maxsize=32)
def _stylesheet(css: str) -> CSS:
    # Parsing the stylesheet is ~15 % of a render; brands reuse theirs, so parse once.
    return CSS(string=css, base_url=BASE_URL, url_fetcher=_fetcher, font_config=_font_config)


def html_to_pdf(html: str, *, css: str = "", pdf_a: bool = True) -> bytes:
    """PDF bytes of `html` styled by `css` (if given); PDF/A-3b when `pdf_a` (what
    Factur-X requires)."""
    html = _INDENTATION.sub("><", html)
    # The font configuration and image cache are shared by the whole process and are
    # not thread-safe (Pango/fontconfig): renders in threads (admin preview under a
    # threaded server, eager tasks) take turns. Workers scale with processes.
    with _render_lock:
        document = _DocumentHTML(string=html, base_url=BASE_URL, url_fetcher=_fetcher)
        options = {"font_config": _font_config, "cache": _cache, "uncompressed_pdf": False}
        if css:
            options["stylesheets"] = [_stylesheet(css)]
        if pdf_a:
            options["pdf_variant"] = "pdf/a-3b"
        return document.write_pdf(**options)
