"""Server-side SVG price-history chart for the dashboard (issue 6).

Pure helper: standard library only, no Django, so it is tested with synthetic data. The input is
the trade log's price snapshots (`Trade.prices_after_ppm`, one probability per outcome after each
trade); the output is a self-contained, accessible `<svg>` string.

Thousands of trades become a few hundred vertices per outcome with M4 downsampling: the x axis is
cut into one bucket per couple of pixels and each bucket keeps its first, lowest, highest and last
point, so every spike a pixel could show survives while the markup stays small. Prices are step
functions (a price holds until the next trade), so lines are drawn as steps.

Colour is never the only signal: each outcome has its own dash pattern and marker shape, repeated
in the legend next to its label and current probability (WCAG 1.4.1), and the `<title>`/`<desc>`
give a text summary to screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe–Ito (colour-blind safe) plus two darker extras for markets with 9–10 outcomes.
COLOURS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#4D4D4D",
    "#8B6D00",
    "#7A3E9D",
    "#A0522D",
)
DASHES = (
    "",
    "8 4",
    "2 3",
    "10 3 2 3",
    "4 4",
    "12 4 4 4",
    "1 4",
    "6 2 2 2 2 2",
    "14 6",
    "3 6",
)
MARKERS = (
    "circle",
    "square",
    "triangle",
    "diamond",
    "triangle-down",
    "cross",
    "plus",
    "star",
    "hexagon",
    "bar",
)
MAX_OUTCOMES = 10


@dataclass(frozen=True)
class Style:
    colour: str
    dash: str
    marker: str


def outcome_style(position: int) -> Style:
    """Colour, dash pattern and marker of the outcome at `position` (0-based); the page's
    probability bars use the same style so bar and line are recognisably one outcome."""
    i = position % MAX_OUTCOMES
    return Style(COLOURS[i], DASHES[i], MARKERS[i])


def downsample_m4(points: Sequence[tuple[float, float]], buckets: int) -> list[tuple[float, float]]:
    """Keep, per x bucket, the first, lowest, highest and last point (M4 aggregation).

    `points` must be sorted by x. The first and last points are always kept; the result is
    sorted by x, has no duplicates, and has at most `4 * buckets` points. With `buckets < 1` or
    few points the input is returned unchanged.
    """
    n = len(points)
    if buckets < 1 or n <= 4 * buckets:
        return list(points)
    x0, x1 = points[0][0], points[-1][0]
    span = x1 - x0
    if span <= 0:
        # Everything at one instant: first, min, max, last of the whole series.
        return _m4_pick(points, 0, n)
    keep: list[tuple[float, float]] = []
    start = 0
    current = 0
    for i, (x, _) in enumerate(points):
        bucket = min(buckets - 1, int((x - x0) / span * buckets))
        if bucket != current:
            keep.extend(_m4_pick(points, start, i))
            start, current = i, bucket
    keep.extend(_m4_pick(points, start, n))
    return keep


def _m4_pick(
    points: Sequence[tuple[float, float]], start: int, stop: int
) -> list[tuple[float, float]]:
    if stop <= start:
        return []
    indices = range(start, stop)
    low = min(indices, key=lambda i: points[i][1])
    high = max(indices, key=lambda i: points[i][1])
    return [points[i] for i in sorted({start, low, high, stop - 1})]


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _time_label(moment: dt.datetime, span: dt.timedelta) -> str:
    moment = moment.astimezone(dt.UTC)
    if span <= dt.timedelta(hours=2):
        return moment.strftime("%H:%M:%S")
    if span <= dt.timedelta(days=1):
        return moment.strftime("%H:%M")
    if span <= dt.timedelta(days=60):
        return moment.strftime("%b %d %H:%M").replace(" 0", " ")
    return moment.strftime("%Y-%m-%d")


def _marker(shape: str, x: float, y: float, style: Style, size: float = 4.5) -> str:
    """One marker glyph centred on (x, y). Filled shapes get a white outline so they stay
    visible where lines cross."""
    s = size
    common = f'fill="{style.colour}" stroke="#fff" stroke-width="1"'
    if shape == "circle":
        return f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="{_fmt(s)}" {common}/>'
    if shape == "square":
        return (
            f'<rect x="{_fmt(x - s)}" y="{_fmt(y - s)}" width="{_fmt(2 * s)}" '
            f'height="{_fmt(2 * s)}" {common}/>'
        )
    polygons = {
        "triangle": [(0, -1.2), (1.1, 0.9), (-1.1, 0.9)],
        "triangle-down": [(0, 1.2), (1.1, -0.9), (-1.1, -0.9)],
        "diamond": [(0, -1.3), (1.1, 0), (0, 1.3), (-1.1, 0)],
        "hexagon": [(1, 0), (0.5, 0.87), (-0.5, 0.87), (-1, 0), (-0.5, -0.87), (0.5, -0.87)],
        "star": [
            (0, -1.3),
            (0.35, -0.4),
            (1.25, -0.4),
            (0.55, 0.15),
            (0.8, 1.05),
            (0, 0.5),
            (-0.8, 1.05),
            (-0.55, 0.15),
            (-1.25, -0.4),
            (-0.35, -0.4),
        ],
        "bar": [(-1.2, -0.5), (1.2, -0.5), (1.2, 0.5), (-1.2, 0.5)],
    }
    if shape in polygons:
        coords = " ".join(f"{_fmt(x + dx * s)},{_fmt(y + dy * s)}" for dx, dy in polygons[shape])
        return f'<polygon points="{coords}" {common}/>'
    # cross and plus are strokes, drawn twice (white halo, then colour) for contrast.
    left, right, top, bottom = _fmt(x - s), _fmt(x + s), _fmt(y - s), _fmt(y + s)
    if shape == "cross":
        d = f"M{left} {top}L{right} {bottom}M{left} {bottom}L{right} {top}"
    else:
        d = f"M{left} {_fmt(y)}L{right} {_fmt(y)}M{_fmt(x)} {top}L{_fmt(x)} {bottom}"
    return (
        f'<path d="{d}" stroke="#fff" stroke-width="4" fill="none"/>'
        f'<path d="{d}" stroke="{style.colour}" stroke-width="2" fill="none"/>'
    )


def legend_swatch_svg(position: int, *, width: int = 28, height: int = 14) -> str:
    """A small inline SVG (line with the outcome's dash and marker) for legends and lists."""
    style = outcome_style(position)
    y = height / 2
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    return (
        f'<svg class="swatch" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-hidden="true" focusable="false">'
        f'<line x1="1" y1="{_fmt(y)}" x2="{width - 1}" y2="{_fmt(y)}" stroke="{style.colour}" '
        f'stroke-width="2.5"{dash}/>'
        f"{_marker(style.marker, width / 2, y, style, size=4)}</svg>"
    )


def price_chart_svg(
    history: Sequence[tuple[dt.datetime, Sequence[float]]],
    labels: Sequence[str],
    *,
    end: dt.datetime | None = None,
    width: int = 760,
    height: int = 340,
    pixels_per_bucket: int = 4,
    title: str = "Price history",
    trades: int | None = None,
    id_prefix: str = "chart",
    known_at: dt.datetime | None = None,
) -> str:
    """Render the probability of every outcome over time as one SVG.

    `history` is `(moment, probabilities)` pairs sorted by time, probabilities in [0, 1] with one
    entry per label (the market's opening prices first, then one pair per trade). The last prices
    are held until `end` (now, or when the market closed). The chart scales to its container
    (`viewBox`, no fixed size), and the legend is HTML the caller renders, so this returns only
    the plot. `known_at` (docs/domain.md §6.2) marks when the outcome became known and shades
    the span after it, whose trades the settlement reverses.
    """
    n = len(labels)
    pad_left, pad_right, pad_top, pad_bottom = 44, 16, 12, 30
    plot_w = width - pad_left - pad_right
    plot_h = height - pad_top - pad_bottom
    history = [(at, list(probs)) for at, probs in history if len(probs) == n]
    parts: list[str] = []
    summary: list[str] = []

    if not history or n == 0:
        return (
            f'<svg class="price-chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}: no trades yet" xmlns="http://www.w3.org/2000/svg">'
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">'
            "No price history yet</text></svg>"
        )

    start = history[0][0]
    finish = max(end or history[-1][0], history[-1][0])
    span = finish - start
    seconds = span.total_seconds() or 1.0

    def px(moment: dt.datetime) -> float:
        return pad_left + (moment - start).total_seconds() / seconds * plot_w

    def py(probability: float) -> float:
        return pad_top + (1 - min(1.0, max(0.0, probability))) * plot_h

    # Grid and axes.
    parts.append('<g class="grid" aria-hidden="true">')
    for pct in (0, 25, 50, 75, 100):
        y = py(pct / 100)
        parts.append(
            f'<line x1="{pad_left}" y1="{_fmt(y)}" x2="{width - pad_right}" y2="{_fmt(y)}"/>'
            f'<text x="{pad_left - 6}" y="{_fmt(y + 4)}" text-anchor="end">{pct}%</text>'
        )
    ticks = 4 if width >= 600 else 2
    for k in range(ticks + 1):
        moment = start + span * (k / ticks)
        x = pad_left + plot_w * k / ticks
        anchor = "start" if k == 0 else "end" if k == ticks else "middle"
        parts.append(
            f'<line x1="{_fmt(x)}" y1="{pad_top}" x2="{_fmt(x)}" y2="{pad_top + plot_h}" '
            f'class="vgrid"/><text x="{_fmt(x)}" y="{height - 10}" text-anchor="{anchor}">'
            f"{escape(_time_label(moment, span))}</text>"
        )
    parts.append("</g>")
    if known_at is not None and start <= known_at <= finish:
        x = px(known_at)
        parts.append(
            f'<g class="known-at"><title>Outcome known at {escape(_time_label(known_at, span))} '
            "UTC: later trades reversed</title>"
            f'<rect x="{_fmt(x)}" y="{pad_top}" width="{_fmt(px(finish) - x)}" '
            f'height="{plot_h}" class="reversed-span" fill="#888" fill-opacity="0.15"/>'
            f'<line x1="{_fmt(x)}" y1="{pad_top}" x2="{_fmt(x)}" y2="{pad_top + plot_h}" '
            'stroke="#444" stroke-width="1.5" stroke-dasharray="4 3"/>'
            f'<text x="{_fmt(x + 4)}" y="{pad_top + 12}">known at</text></g>'
        )

    buckets = max(1, plot_w // max(1, pixels_per_bucket))
    marker_slots = 5
    for i, label in enumerate(labels):
        style = outcome_style(i)
        series = [(px(at), py(probs[i])) for at, probs in history]
        series = downsample_m4(series, buckets)
        last_y = series[-1][1]
        # Step line: hold each price until the next point, then to the right edge.
        coords = [series[0]]
        for x, y in series[1:]:
            coords.append((x, coords[-1][1]))
            coords.append((x, y))
        coords.append((px(finish), last_y))
        path = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in coords)
        dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
        current = history[-1][1][i]
        name = escape(label)
        parts.append(
            f'<g class="series" data-outcome="{i}"><title>{name}: {current:.0%} now</title>'
            f'<polyline points="{path}" fill="none" stroke="{style.colour}" stroke-width="2.25" '
            f'stroke-linejoin="round"{dash}/>'
        )
        # Markers at staggered positions so overlapping lines stay distinguishable.
        for slot in range(marker_slots):
            frac = (slot + (i + 1) / (n + 1)) / marker_slots
            target = pad_left + plot_w * frac
            y = _value_at(coords, target)
            parts.append(_marker(style.marker, target, y, style))
        parts.append("</g>")
        summary.append(f"{label} {current:.0%}")

    count = len(history) - 1 if trades is None else trades
    desc = (
        f"{count} trades from {_time_label(start, span)} to "
        f"{_time_label(finish, span)} UTC. Now: " + ", ".join(summary) + "."
    )
    if known_at is not None:
        desc += f" Outcome known at {_time_label(known_at, span)} UTC: later trades reversed."
    return (
        f'<svg class="price-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{id_prefix}-title {id_prefix}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{id_prefix}-title">{escape(title)}</title>'
        f'<desc id="{id_prefix}-desc">{escape(desc)}</desc>' + "".join(parts) + "</svg>"
    )


def _value_at(coords: Sequence[tuple[float, float]], x: float) -> float:
    """The y of a step polyline at `x` (the last vertex at or before it)."""
    y = coords[0][1]
    for cx, cy in coords:
        if cx > x:
            break
        y = cy
    return y
