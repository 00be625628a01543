"""Server-rendered SVG charts for the feedback reports (no JavaScript, no CDN).

Each chart is an accessible <svg role="img"> with a <title>; the admin page prints the
figures in a table next to it for screen readers and copy-paste."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

PROMOTER = "#1f8a4c"
PASSIVE = "#b8bfcc"
DETRACTOR = "#c0392b"
BAR = "#2851a3"
INK = "#1d2433"
MUTED = "#5b6478"


def _n(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Segment:
    value: int
    colour: str
    name: str


def _svg(width: int, height: int, title: str, body: str) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {w} {h}" width="100%" '
        'style="max-width:{w}px" font-family="sans-serif" font-size="11"><title>{t}</title>{b}</svg>',
        w=width,
        h=height,
        t=title,
        b=mark_safe(body),  # noqa: S308 - built below from format_html pieces only
    )


def stacked_bars(
    *, title: str, labels: Sequence[str], stacks: Sequence[Sequence[Segment]], notes: Sequence[str] = ()
) -> SafeString:
    """100 % stacked columns, one per label (e.g. month), with an optional note above each (e.g. the NPS)."""
    width, height, top, bottom, left = max(320, 70 * len(labels) + 40), 240, 28, 30, 30
    plot = height - top - bottom
    column = (width - left) / max(len(labels), 1)
    parts = [
        format_html(
            '<line x1="{x}" y1="{y}" x2="{x2}" y2="{y}" stroke="{c}"/>', x=left, y=top + plot, x2=width, c=MUTED
        ),
        format_html('<text x="2" y="{y}" fill="{c}">100%</text>', y=top + 4, c=MUTED),
        format_html('<text x="2" y="{y}" fill="{c}">0%</text>', y=top + plot, c=MUTED),
    ]
    for index, (label, stack) in enumerate(zip(labels, stacks, strict=True)):
        total = sum(segment.value for segment in stack)
        x = left + index * column + column * 0.15
        bar_width = column * 0.7
        y = top + plot
        for segment in stack:
            if not total or not segment.value:
                continue
            segment_height = plot * segment.value / total
            y -= segment_height
            parts.append(
                format_html(
                    '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{c}"><title>{name}: {v}</title></rect>',
                    x=_n(x),
                    y=_n(y),
                    w=_n(bar_width),
                    h=_n(segment_height),
                    c=segment.colour,
                    name=segment.name,
                    v=segment.value,
                )
            )
        centre = x + bar_width / 2
        parts.append(
            format_html(
                '<text x="{x}" y="{y}" text-anchor="middle" fill="{c}">{t}</text>',
                x=_n(centre),
                y=height - 10,
                c=INK,
                t=label,
            )
        )
        if index < len(notes) and notes[index]:
            parts.append(
                format_html(
                    '<text x="{x}" y="{y}" text-anchor="middle" font-weight="bold" fill="{c}">{t}</text>',
                    x=_n(centre),
                    y=top - 10,
                    c=INK,
                    t=notes[index],
                )
            )
    # Legend under the axis labels, from the first column's segments (every column has the same).
    for index, segment in enumerate(stacks[0] if stacks else ()):
        x = left + index * 120
        parts.append(
            format_html(
                '<rect x="{x}" y="{y}" width="10" height="10" fill="{c}"/>'
                '<text x="{tx}" y="{ty}" fill="{ink}">{n}</text>',
                x=x,
                y=height + 6,
                c=segment.colour,
                tx=x + 14,
                ty=height + 15,
                ink=INK,
                n=segment.name,
            )
        )
    return _svg(width, height + 24, title, "".join(parts))


def horizontal_bars(*, title: str, rows: Sequence[tuple[str, int]], colour: str = BAR) -> SafeString:
    """One bar per row (label, count), longest first as given."""
    row_height, label_width, width = 26, 220, 640
    height = max(row_height * len(rows) + 10, 40)
    largest = max((count for _, count in rows), default=0) or 1
    bar_space = width - label_width - 50
    parts = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end" fill="' + INK + '">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="16" fill="{}"><title>{}: {}</title></rect>'
        '<text x="{}" y="{}" fill="' + INK + '">{}</text>',
        (
            (
                label_width - 8,
                10 + index * row_height + 12,
                label[:40],
                label_width,
                10 + index * row_height,
                _n(bar_space * count / largest),
                colour,
                label,
                count,
                _n(label_width + bar_space * count / largest + 6),
                10 + index * row_height + 12,
                count,
            )
            for index, (label, count) in enumerate(rows)
        ),
    )
    return _svg(width, height, title, parts)


def line_chart(*, title: str, labels: Sequence[str], values: Sequence[int | None], low: int, high: int) -> SafeString:
    """A line over `labels` on a fixed scale (e.g. NPS from -100 to 100); gaps where a value is None."""
    width, height, top, bottom, left = max(320, 70 * len(labels) + 40), 200, 16, 30, 36
    plot = height - top - bottom
    column = (width - left) / max(len(labels), 1)

    def y_of(value: float) -> float:
        return top + plot * (high - value) / (high - low)

    parts = [
        format_html('<text x="2" y="{y}" fill="{c}">{v}</text>', y=_n(y_of(mark) + 4), c=MUTED, v=mark)
        for mark in (low, (low + high) // 2, high)
    ]
    parts += [
        format_html('<line x1="{x}" y1="{y}" x2="{x2}" y2="{y}" stroke="#e3e6ee"/>', x=left, x2=width, y=_n(y_of(mark)))
        for mark in (low, (low + high) // 2, high)
    ]
    points = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + index * column + column / 2
        parts.append(
            format_html(
                '<text x="{x}" y="{y}" text-anchor="middle" fill="{c}">{t}</text>',
                x=_n(x),
                y=height - 10,
                c=INK,
                t=label,
            )
        )
        if value is None:
            continue
        points.append(f"{x},{y_of(value):.1f}")
        parts.append(
            format_html(
                '<circle cx="{x}" cy="{y}" r="4" fill="{c}"><title>{t}: {v}</title></circle>'
                '<text x="{x}" y="{ty}" text-anchor="middle" fill="{c}">{v}</text>',
                x=_n(x),
                y=_n(y_of(value)),
                ty=_n(y_of(value) - 8),
                c=BAR,
                t=label,
                v=value,
            )
        )
    if len(points) > 1:
        parts.insert(
            0,
            format_html(
                '<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2"/>', p=" ".join(points), c=BAR
            ),
        )
    return _svg(width, height, title, "".join(parts))
