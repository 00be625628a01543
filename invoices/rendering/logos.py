"""Validation of uploaded brand logos: PNG or JPEG checked with Pillow, SVG parsed with
defusedxml and refused when it could run script or reach outside the file."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Final

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from PIL import Image, UnidentifiedImageError

LOGO_MAX_BYTES: Final = 1024 * 1024
LOGO_MAX_PIXELS: Final = 4000  # per side
_RASTER_FORMATS: Final = {"PNG": "image/png", "JPEG": "image/jpeg"}
# File name extension for each media type logo_media_type() returns (served as logo.<ext>).
LOGO_EXTENSIONS: Final = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
_FORBIDDEN_ELEMENTS: Final = frozenset({"script", "foreignobject", "iframe", "embed", "object", "handler"})
_HREF_ATTRIBUTES: Final = frozenset({"href", "src"})
_CSS_URL: Final = re.compile(r"url\s*\(\s*['\"]?\s*(?!#)", re.IGNORECASE)
_CSS_IMPORT: Final = re.compile(r"@import", re.IGNORECASE)


def _local_name(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def _svg_problem(data: bytes) -> str | None:
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException:
        return str(_("The SVG declares entities or a DTD, which logos may not use."))
    except SafeET.ParseError:
        return str(_("The file is not a well-formed SVG image."))
    if _local_name(root.tag) != "svg":
        return str(_("The file is XML but not an SVG image."))
    for element in root.iter():
        tag = _local_name(element.tag) if isinstance(element.tag, str) else ""
        if tag in _FORBIDDEN_ELEMENTS:
            message = _("The SVG contains a <%(tag)s> element; logos may not contain scripts or embedded content.")
            return str(message) % {"tag": tag}
        if tag == "style" and element.text and (_CSS_URL.search(element.text) or _CSS_IMPORT.search(element.text)):
            return str(_("The SVG's styles load external resources; logos must be self-contained."))
        for name, value in element.attrib.items():
            attribute = _local_name(name)
            if attribute.startswith("on"):
                return str(_("The SVG has an event handler (%(name)s); logos may not contain scripts.")) % {
                    "name": attribute
                }
            if attribute in _HREF_ATTRIBUTES and not value.strip().startswith("#"):
                return str(
                    _("The SVG refers to %(target)s; logos must be self-contained (no links, no external images).")
                ) % {"target": value.strip()[:40]}
            if attribute == "style" and _CSS_URL.search(value):
                return str(_("The SVG's styles load external resources; logos must be self-contained."))
    return None


def logo_media_type(data: bytes) -> str:
    """The media type of a valid logo's bytes, or ValidationError with a reason staff can act on."""
    if len(data) > LOGO_MAX_BYTES:
        raise ValidationError(
            _("The logo is %(size)s kB; the limit is %(limit)s kB."),
            code="logo_too_large",
            params={"size": len(data) // 1024, "limit": LOGO_MAX_BYTES // 1024},
        )
    head = data[:512].lstrip()
    if head.startswith(b"<?xml") or head.startswith(b"<svg") or b"<svg" in head:
        problem = _svg_problem(data)
        if problem:
            raise ValidationError(problem, code="logo_unsafe_svg")
        return "image/svg+xml"

    try:
        with Image.open(BytesIO(data)) as image:
            image_format = image.format
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValidationError(
            _("The logo must be a PNG, JPEG or SVG image; this file is not an image we can read."),
            code="logo_not_an_image",
        ) from error
    if image_format not in _RASTER_FORMATS:
        raise ValidationError(
            _("The logo must be a PNG, JPEG or SVG image, not %(format)s."),
            code="logo_format",
            params={"format": image_format},
        )
    if width > LOGO_MAX_PIXELS or height > LOGO_MAX_PIXELS:
        raise ValidationError(
            _("The logo is %(width)s×%(height)s pixels; at most %(limit)s pixels per side."),
            code="logo_too_large",
            params={"width": width, "height": height, "limit": LOGO_MAX_PIXELS},
        )
    return _RASTER_FORMATS[image_format]


def validate_logo(file) -> None:
    """Model field validator: reads the upload (or stored file) and checks it."""
    file.seek(0)
    data = file.read(LOGO_MAX_BYTES + 1)
    if len(data) > LOGO_MAX_BYTES:
        # Report the true size when we know it without reading it all.
        size = getattr(file, "size", len(data))
        raise ValidationError(
            _("The logo is %(size)s kB; the limit is %(limit)s kB."),
            code="logo_too_large",
            params={"size": size // 1024, "limit": LOGO_MAX_BYTES // 1024},
        )
    file.seek(0)
    logo_media_type(data)
