"""PDF with WeasyPrint, offline: a URL fetcher that serves static files and data: URIs
and refuses everything else, so a document never reaches the network."""

from __future__ import annotations

import gc
import logging
import mimetypes
import re
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Final

import pydyf
from django.conf import settings
from django.contrib.staticfiles import finders
from weasyprint import CSS, HTML
from weasyprint.images import RasterImage
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


def _reuse_image_streams() -> None:
    """Encode each image's PDF stream once per process instead of once per document.

    WeasyPrint caches decoded images across documents (`cache=`), but still re-encodes a
    PNG's pixels (and its alpha mask) into PDF stream data for every document: ~11 ms per
    render for a 600x200 transparent logo. The first encoding is kept on the image and each
    document gets fresh stream objects around the same bytes (WeasyPrint rewrites the
    objects it is given while writing a PDF). Should WeasyPrint change these internals,
    the hook stays off and images are simply encoded per document again.
    """
    original = getattr(RasterImage, "get_x_object", None)
    if original is None or getattr(original, "_tarif_reuses_streams", False):
        return

    def fresh(stream: pydyf.Stream) -> pydyf.Stream:
        extra = pydyf.Dictionary(stream.extra)
        if isinstance(extra.get("SMask"), pydyf.Stream):
            extra["SMask"] = fresh(extra["SMask"])
        return pydyf.Stream(list(stream.stream), extra, stream.compress)

    def get_x_object(self, interpolate, dpi_ratio):
        encoded = self.__dict__.setdefault("_tarif_x_objects", {})
        key = (interpolate, dpi_ratio)
        if key not in encoded:
            encoded[key] = original(self, interpolate, dpi_ratio)
        return fresh(encoded[key])

    get_x_object._tarif_reuses_streams = True
    RasterImage.get_x_object = get_x_object


_reuse_image_streams()


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
    with _render_lock, _collector_paused():
        document = _DocumentHTML(string=html, base_url=BASE_URL, url_fetcher=_fetcher)
        options = {"font_config": _font_config, "cache": _cache, "uncompressed_pdf": False}
        if css:
            options["stylesheets"] = [_stylesheet(css)]
        if pdf_a:
            options["pdf_variant"] = "pdf/a-3b"
        return document.write_pdf(**options)


@contextmanager
def _collector_paused():
    # A render allocates ~10^5 short-lived objects (boxes, styles), which sets off the
    # cyclic garbage collector dozens of times per PDF for almost nothing to collect
    # (~4 % of a render). Pause it for the render; it runs again right after.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
