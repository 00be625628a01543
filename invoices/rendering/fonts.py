"""The bundled open fonts a brand can pick (static/tarif/fonts/, licences alongside).

No font is ever fetched from the network: @font-face points at these static files,
resolved through Django's staticfiles finders by `invoices.rendering.pdf.local_url_fetcher`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Font:
    key: str
    family: str
    regular: str  # static path
    bold: str
    generic: str  # CSS generic family fallback


FONTS: Final[dict[str, Font]] = {
    font.key: font
    for font in (
        Font(
            "open-sans",
            "Open Sans",
            "tarif/fonts/open-sans/OpenSans-Regular.ttf",
            "tarif/fonts/open-sans/OpenSans-Bold.ttf",
            "sans-serif",
        ),
        Font(
            "liberation-sans",
            "Liberation Sans",
            "tarif/fonts/liberation-sans/LiberationSans-Regular.ttf",
            "tarif/fonts/liberation-sans/LiberationSans-Bold.ttf",
            "sans-serif",
        ),
        Font(
            "liberation-serif",
            "Liberation Serif",
            "tarif/fonts/liberation-serif/LiberationSerif-Regular.ttf",
            "tarif/fonts/liberation-serif/LiberationSerif-Bold.ttf",
            "serif",
        ),
        Font(
            "dejavu-sans",
            "DejaVu Sans",
            "tarif/fonts/dejavu-sans/DejaVuSans.ttf",
            "tarif/fonts/dejavu-sans/DejaVuSans-Bold.ttf",
            "sans-serif",
        ),
        Font(
            "dejavu-serif",
            "DejaVu Serif",
            "tarif/fonts/dejavu-serif/DejaVuSerif.ttf",
            "tarif/fonts/dejavu-serif/DejaVuSerif-Bold.ttf",
            "serif",
        ),
    )
}
DEFAULT_FONT: Final = "open-sans"
FONT_CHOICES: Final = [(font.key, font.family) for font in FONTS.values()]


def font_for(key: str | None) -> Font:
    return FONTS.get(key or DEFAULT_FONT, FONTS[DEFAULT_FONT])
