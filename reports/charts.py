"""Chart geometry for server-rendered SVG (templates/reports/chart.svg): no JavaScript, no CDN.

A chart is computed here as plain shapes in a fixed 720×260 viewBox (bars, polylines,
axis ticks, legend); the template only draws them. Values are numbers in display
units (e.g. euros, percent), already converted by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 44
PALETTE = ("#2851a3", "#2e9e5b", "#f0a202", "#c0392b", "#8e44ad", "#16a085", "#7f8c8d", "#d35400")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | int | None]
    colour: str = ""


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    points: str
    colour: str
    name: str
    dots: tuple[tuple[float, float, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    rects: tuple[Rect, ...] = ()
    lines: tuple[Line, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    legend: tuple[tuple[str, str], ...] = ()
    zero_y: float = 0.0
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    extra: dict = field(default_factory=dict)


def _nice_step(span: float) -> float:
    if span <= 0:
        return 1.0
    raw = span / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


def _scale(low: float, high: float) -> tuple[float, float, list[float]]:
    low, high = min(low, 0.0), max(high, 0.0)
    if low == high:
        high = low + 1
    step = _nice_step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    ticks = []
    value = low
    while value <= high + step / 2:
        ticks.append(round(value, 10))
        value += step
    return low, high, ticks


def _label(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _colours(series: Sequence[Series]) -> list[Series]:
    return [
        Series(item.name, item.values, item.colour or PALETTE[index % len(PALETTE)])
        for index, item in enumerate(series)
    ]


def _x_ticks(labels: Sequence[str], slot: float) -> tuple[Tick, ...]:
    every = max(1, math.ceil(len(labels) / 12))
    return tuple(
        Tick(LEFT + slot * index + slot / 2, label) for index, label in enumerate(labels) if index % every == 0
    )


def bar_chart(
    *, title: str, labels: Sequence[str], series: Sequence[Series], stacked: bool = True, lines: Sequence[Series] = ()
) -> Chart:
    """Bars per label (stacked or side by side; negatives go below zero), optional lines on top."""
    series, lines = _colours(series), _colours([*series, *lines])[len(series) :]
    count = max(1, len(labels))
    values = [value or 0 for item in [*series, *lines] for value in item.values]
    if stacked:
        positives = [sum(max(item.values[i] or 0, 0) for item in series) for i in range(len(labels))]
        negatives = [sum(min(item.values[i] or 0, 0) for item in series) for i in range(len(labels))]
        values += positives + negatives
    low, high, ticks = _scale(min(values, default=0), max(values, default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / count

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_height

    rects = []
    for index, label in enumerate(labels):
        up = down = 0.0
        for position, item in enumerate(series):
            value = float(item.values[index] or 0)
            if stacked:
                width = slot * 0.7
                x = LEFT + slot * index + slot * 0.15
                base = up if value >= 0 else down
                top, bottom = (y(base + value), y(base)) if value >= 0 else (y(base), y(base + value))
                if value >= 0:
                    up += value
                else:
                    down += value
            else:
                width = slot * 0.8 / len(series)
                x = LEFT + slot * index + slot * 0.1 + width * position
                top, bottom = (y(value), y(0)) if value >= 0 else (y(0), y(value))
            if value:
                rects.append(
                    Rect(x, top, width, max(bottom - top, 0.5), item.colour, f"{label} · {item.name}: {value:g}")
                )
    drawn_lines = [
        Line(
            points=" ".join(
                f"{LEFT + slot * i + slot / 2:.1f},{y(float(v)):.1f}"
                for i, v in enumerate(item.values)
                if v is not None
            ),
            colour=item.colour,
            name=item.name,
            dots=tuple(
                (LEFT + slot * i + slot / 2, y(float(v)), f"{labels[i]} · {item.name}: {float(v):g}")
                for i, v in enumerate(item.values)
                if v is not None
            ),
        )
        for item in lines
    ]
    return Chart(
        title=title,
        rects=tuple(rects),
        lines=tuple(drawn_lines),
        y_ticks=tuple(Tick(y(tick), _label(tick)) for tick in ticks),
        x_ticks=_x_ticks(labels, slot),
        legend=tuple((item.name, item.colour) for item in [*series, *lines]),
        zero_y=y(0),
    )


def line_chart(*, title: str, labels: Sequence[str], series: Sequence[Series]) -> Chart:
    return bar_chart(title=title, labels=labels, series=[], lines=series)
