"""Chart specifications for the console's report pages, drawn by Chart.js in the browser.

A chart is data only (labels, series, axis titles, the unit of the values); the page puts
`Chart.as_json()` in a `json_script` element and static/tarif/admin/charts.js draws it
(the CSP allows no inline script). Values are numbers in display units (euros, percent,
days), already converted by the caller; the unit tells the script how to format ticks and
tooltips (money with its currency, in the page's locale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from config.types import JsonDict

PALETTE = ("#2851a3", "#2e9e5b", "#f0a202", "#c0392b", "#8e44ad", "#16a085", "#7f8c8d", "#d35400")

# What the values of a chart are: the script formats ticks and tooltips from it.
MONEY, PERCENT, NUMBER, DAYS = "money", "percent", "number", "days"
BAR, LINE = "bar", "line"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | int | None]
    colour: str = ""


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    kinds: tuple[str, ...]  # BAR or LINE, one per series
    x_label: str = ""
    y_label: str = ""
    unit: str = NUMBER
    currency: str | None = None
    stacked: bool = False
    y_min: float | None = None
    y_max: float | None = None
    horizontal: bool = False

    @property
    def has_data(self) -> bool:
        """Something to draw (an empty period draws no empty frame: the page says "nothing")."""
        return bool(self.labels) and any(value is not None for series in self.series for value in series.values)

    def as_json(self) -> JsonDict:
        """The chart as charts.js reads it (plain JSON: strings, numbers, lists)."""
        return {
            "title": str(self.title),
            "labels": [str(label) for label in self.labels],
            "datasets": [
                {
                    "label": str(series.name),
                    "type": kind,
                    "data": [None if value is None else float(value) for value in series.values],
                    "colour": series.colour,
                }
                for series, kind in zip(self.series, self.kinds, strict=True)
            ],
            "x_label": str(self.x_label),
            "y_label": str(self.y_label),
            "unit": self.unit,
            "currency": self.currency,
            "stacked": self.stacked,
            "y_min": self.y_min,
            "y_max": self.y_max,
            "horizontal": self.horizontal,
        }


def _colours(series: Sequence[Series], offset: int = 0) -> list[Series]:
    return [
        Series(item.name, item.values, item.colour or PALETTE[(offset + index) % len(PALETTE)])
        for index, item in enumerate(series)
    ]


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    stacked: bool = True,
    lines: Sequence[Series] = (),
    x_label: str = "",
    y_label: str = "",
    unit: str = NUMBER,
    currency: str | None = None,
    y_min: float | None = None,
    y_max: float | None = None,
    horizontal: bool = False,
) -> Chart:
    """Bars per label (stacked or side by side; negatives go below zero), optional lines on top."""
    bars, drawn_lines = _colours(series), _colours(lines, offset=len(series))
    return Chart(
        title=title,
        labels=tuple(labels),
        series=(*bars, *drawn_lines),
        kinds=(*(BAR for _ in bars), *(LINE for _ in drawn_lines)),
        x_label=x_label,
        y_label=y_label,
        unit=unit,
        currency=currency,
        stacked=stacked,
        y_min=y_min,
        y_max=y_max,
        horizontal=horizontal,
    )


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    x_label: str = "",
    y_label: str = "",
    unit: str = NUMBER,
    currency: str | None = None,
    y_min: float | None = None,
    y_max: float | None = None,
) -> Chart:
    return bar_chart(
        title=title,
        labels=labels,
        series=[],
        lines=series,
        x_label=x_label,
        y_label=y_label,
        unit=unit,
        currency=currency,
        y_min=y_min,
        y_max=y_max,
    )
