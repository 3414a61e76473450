"""Price-history charts as PNG images for Discord (issue 13).

Rendered with matplotlib's Agg backend through the object-oriented API (`Figure` +
`FigureCanvasAgg`, never `pyplot`): no global figure state, no display, no system packages (the
pip wheel bundles FreeType, Agg and the DejaVu fonts). Renders run on one dedicated thread
(`RENDER_EXECUTOR`), never on the event loop: matplotlib is not thread-safe, and one chart takes
tens of milliseconds (see `bench/chart_render.py`).

The data is the market's price history from `betting.selectors.price_history` (the opening prices
1/n, then every outcome's probability after each trade; for pools, each outcome's share of the
pot, DOMAIN §5). Probabilities are display values (DOMAIN §1). A PNG is cached per market, trade
count and status, so repeated clicks do not re-render; a chart changes only when somebody trades or
the market closes (the right edge is "now" for an open market, so entries also expire after an
hour).
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

from django.utils import timezone
from matplotlib import dates as mdates
from matplotlib import font_manager, ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from betting import selectors as betting_selectors
from markets.selectors import MarketSummary

CHART_FILENAME = "chart.png"
CACHE_SECONDS = 3600
MAX_POINTS = 400
"""Points per outcome after downsampling: about one per two pixels of plot width."""

# Discord's dark theme.
BACKGROUND = "#313338"
PLOT_BACKGROUND = "#2b2d31"
TEXT = "#dbdee1"
MUTED = "#949ba4"
GRID = "#3f4147"
# Ten colours that stay apart on the dark background, plus a line style per outcome so colour is
# never the only signal (outcomes 6–10 are dashed or dotted).
COLOURS = (
    "#5aa9f0",
    "#f5a623",
    "#3dd68c",
    "#f47fbf",
    "#f2e94e",
    "#b48cff",
    "#ff6b5e",
    "#40d9d0",
    "#d0d0d0",
    "#c69c6d",
)
# A dash pattern of its own per outcome (issue 23 item 7): where two lines overlap (every outcome at
# its opening price before the first trade), the one drawn on top leaves gaps the others show
# through; lines are also drawn thinner from the first outcome to the last.
LINESTYLES: tuple[str | tuple[int, tuple[int, ...]], ...] = (
    "-",
    (0, (6, 3)),
    (0, (2, 2)),
    (0, (8, 3, 2, 3)),
    (0, (1, 3)),
    (0, (10, 4)),
    (0, (4, 2, 1, 2, 1, 2)),
    (0, (3, 5)),
    (0, (12, 2, 2, 2)),
    (0, (5, 1)),
)
RANGES: dict[str, tuple[str, dt.timedelta | None]] = {
    "1h": ("last hour", dt.timedelta(hours=1)),
    "24h": ("last 24 hours", dt.timedelta(hours=24)),
    "all": ("since it opened", None),
}
"""The time ranges a chart can show (`/market chart range:`, the chart's range buttons)."""
LABEL_CHARS = 34
TITLE_CHARS = 70
REPLACEMENT = "\N{WHITE SQUARE}"

RENDER_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chart")

_renders = 0
_renders_lock = threading.Lock()


def render_count() -> int:
    """How many charts this process has rendered (cache misses); tests and metrics read it."""
    return _renders


@cache
def _font_charmap() -> frozenset[int]:
    """Code points the bundled DejaVu Sans can draw. Anything else (emoji, CJK) is replaced
    before rendering, so a label never turns into a row of tofu boxes and a missing-glyph warning
    per character."""
    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return frozenset(FT2Font(path).get_charmap())


def display_text(text: str, limit: int, *, missing: str = REPLACEMENT) -> str:
    """`text` made safe for the chart: one line, glyphs the font lacks shown once as `missing`
    per run (□ by default, so two outcomes that differ only in emoji or CJK stay apart; the
    title drops them, Discord shows it in full right above), mathtext dollars escaped, and cut
    to `limit` characters with an ellipsis."""
    charmap = _font_charmap()
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", " ".join(text.split())):
        if ord(ch) in charmap:
            out.append(ch)
        elif unicodedata.category(ch) in ("Mn", "Me", "Cf", "Sk") or ch == "\ufe0f":
            continue  # combining marks, variation selectors, joiners of emoji sequences
        elif not out or out[-1] != missing:
            out.append(missing)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    # Matplotlib reads text between two "$" as maths; an escaped dollar is drawn as itself.
    return cleaned.replace("$", r"\$")


def downsample(
    xs: Sequence[float], ys: Sequence[float], buckets: int
) -> tuple[list[float], list[float]]:
    """Keep the first, lowest, highest and last point of each x bucket (M4), so every spike a
    pixel could show survives. `xs` must be sorted; the ends are always kept."""
    n = len(xs)
    if n <= 4 * buckets or buckets < 1:
        return list(xs), list(ys)
    x0, span = xs[0], (xs[-1] - xs[0]) or 1.0
    keep: list[int] = []
    start = 0
    current = 0
    for i in range(n + 1):
        bucket = buckets if i == n else min(buckets - 1, int((xs[i] - x0) / span * buckets))
        if bucket != current:
            idx = range(start, i)
            low = min(idx, key=ys.__getitem__)
            high = max(idx, key=ys.__getitem__)
            keep.extend(sorted({start, low, high, i - 1}))
            start, current = i, bucket
    return [xs[i] for i in keep], [ys[i] for i in keep]


@dataclass(frozen=True)
class ChartData:
    """Everything a render needs, with no database access."""

    title: str
    labels: list[str]
    points: list[tuple[dt.datetime, list[float]]]
    end: dt.datetime
    mechanism: str = "amm"
    winner: int | None = None
    span: str = "all"
    """Which of `RANGES` the points cover."""


def time_formatter(start: float, end: float) -> ticker.FuncFormatter:
    """Tick labels that always carry their unit, whatever the span (issue 23 item 7): seconds as
    14:05:30, minutes and hours as 14:05, days as "Dec 07 14:00" or "Dec 07", years with the
    year — never a bare "35"."""
    days = end - start  # matplotlib dates count days
    if days < 5 / 1440:
        fmt = "%H:%M:%S"
    elif days < 1.5:
        fmt = "%H:%M"
    elif days < 10:
        fmt = "%b %d %H:%M"
    elif days < 300:
        fmt = "%b %d"
    else:
        fmt = "%b %d %Y"

    def label(x: float, _pos: int | None = None) -> str:
        return str(mdates.num2date(x, tz=dt.UTC).strftime(fmt))

    return ticker.FuncFormatter(label)


def pool_display(
    points: list[tuple[dt.datetime, list[float]]],
) -> list[tuple[dt.datetime, list[float]]]:
    """A pool's shares as the chart draws them: while only one outcome holds stakes its share is
    a certain 100 %, which says nothing about the pool (the next stake on another side pulls it
    down at once), so the opening shares are held until a second outcome is staked (issue 23
    §7). The legend still states the current shares."""
    if not points:
        return points
    opening = [1 / len(points[0][1])] * len(points[0][1]) if points[0][1] else []
    out = []
    for at, shares in points:
        staked = sum(1 for v in shares if v > 0)
        out.append((at, list(opening) if staked < 2 else shares))
    return out


def window(
    points: list[tuple[dt.datetime, list[float]]], end: dt.datetime, span: str
) -> list[tuple[dt.datetime, list[float]]]:
    """The points of `span` (one of `RANGES`) up to `end`: when the range starts after the
    first point, the price in force at its start becomes its first point."""
    delta = RANGES.get(span, RANGES["all"])[1]
    if delta is None or not points:
        return points
    start = end - delta
    if points[0][0] >= start:
        return points
    before = [p for p in points if p[0] <= start]
    after = [p for p in points if p[0] > start]
    return [(start, list(before[-1][1])), *after]


def render_png(data: ChartData, *, width_px: int = 800, dpi: int = 100) -> bytes:
    """One PNG: each outcome's probability (0–100 %) over time as a step line, the last value
    held until `data.end`, with a legend of the outcome names and their latest probability."""
    global _renders
    n = len(data.labels)
    points = [(at, list(p)) for at, p in data.points if len(p) == n]
    latest = points[-1][1] if points else []
    if data.mechanism == "parimutuel":
        points = pool_display(points)
    columns = 1 if n <= 1 else 2
    legend_rows = -(-n // columns)
    header, axis_labels, row = 64, 50, 22
    height_px = 330 + header + axis_labels + row * legend_rows
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    bottom = (axis_labels + row * legend_rows + 10) / height_px
    top = 1 - header / height_px
    ax = fig.add_axes((0.075, bottom, 0.9, top - bottom))
    ax.set_facecolor(PLOT_BACKGROUND)
    for side in ax.spines.values():
        side.set_color(GRID)
    ax.tick_params(colors=MUTED, labelcolor=TEXT, labelsize=9)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_locator(ticker.MultipleLocator(25))
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(decimals=0))
    fig.text(
        0.075,
        1 - 22 / height_px,
        display_text(data.title, TITLE_CHARS, missing=""),
        color=TEXT,
        fontsize=12.5,
        fontweight="bold",
        va="center",
    )
    what = "Each outcome's share of the pool" if data.mechanism == "parimutuel" else "Probability"
    shown = RANGES.get(data.span, RANGES["all"])[0]
    fig.text(
        0.075,
        1 - 44 / height_px,
        f"{what} after every trade · {shown} · times in UTC",
        color=MUTED,
        fontsize=9,
        va="center",
    )
    label_chars = LABEL_CHARS if columns == 2 else 2 * LABEL_CHARS

    if points:
        start = points[0][0]
        end = max(data.end, points[-1][0])
        if end <= start:
            end = start + dt.timedelta(minutes=1)
        # One vectorised conversion: per-point `date2num` calls cost more than the drawing.
        *xs, x_end = mdates.date2num([at for at, _ in points] + [end]).tolist()
        handles = []
        for i, label in enumerate(data.labels):
            ys = [p[i] * 100 for _, p in points]
            sx, sy = downsample(xs, ys, MAX_POINTS // 4)
            sx.append(x_end)
            sy.append(sy[-1])
            current = latest[i] * 100
            name = display_text(label, label_chars)
            if not any(ch.isalnum() for ch in name):
                name = f"Outcome {i + 1} {name}"
            if data.winner == i:
                name = f"{name} (won)"
            (line,) = ax.plot(
                sx,
                sy,
                drawstyle="steps-post",
                color=COLOURS[i % len(COLOURS)],
                linestyle=LINESTYLES[i % len(LINESTYLES)],
                linewidth=(2.8 if data.winner == i else 2.2) - 0.12 * i,
                label=f"{name}  {current:.0f}%",
            )
            handles.append(line)
        if len(points) == 1:
            # The lines lie on top of each other; say why rather than show only the last one.
            nobody = "No stakes yet" if data.mechanism == "parimutuel" else "No trades yet"
            ax.text(
                0.5,
                0.5,
                f"{nobody}: every outcome at {points[0][1][0]:.0%}",
                color=MUTED,
                fontsize=11,
                ha="center",
                transform=ax.transAxes,
            )
        ax.set_xlim(xs[0], x_end)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6, tz=dt.UTC)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(time_formatter(xs[0], x_end))
        legend = fig.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(0.065, 4 / height_px),
            ncols=columns,
            frameon=False,
            fontsize=10,
            labelcolor=TEXT,
            handlelength=2.4,
            columnspacing=1.6,
        )
        legend.set_in_layout(False)
    else:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "No price history yet", color=MUTED, ha="center", transform=ax.transAxes)

    buffer = io.BytesIO()
    # zlib level 3: a few KiB larger than the default 6, and the encode no longer dominates.
    fig.savefig(buffer, format="png", facecolor=BACKGROUND, pil_kwargs={"compress_level": 3})
    with _renders_lock:
        _renders += 1
    return buffer.getvalue()


def cache_key(market: MarketSummary) -> str:
    """Per market, trade count and status. The creation time is part of the key so a database
    reset (development) cannot serve another market's chart under a reused id."""
    created = int(market.created_at.timestamp() * 1_000_000)
    return f"pm:chart:v2:{market.id}:{created}:{market.trade_count}:{market.status}"


def chart_data(
    *, market: MarketSummary, now: dt.datetime | None = None, span: str = "all"
) -> ChartData:
    """Read the history of `market` (3 queries) and decide where the x axis ends: now for an open
    market (but not past its closing time), else when it closed; `span` (one of `RANGES`) keeps
    the last hour or day. The first point is the market's opening prices (1/n each) when the
    range reaches back to its opening."""
    history = betting_selectors.price_history(market_id=market.id)
    now = now or timezone.now()
    end = min(now, market.closes_at) if market.is_open else (market.closed_at or now)
    span = span if span in RANGES else "all"
    points = [(p.at, list(p.probabilities)) for p in history.points]
    return ChartData(
        title=f"#{market.id} {market.question}",
        labels=history.labels,
        points=window(points, end, span),
        end=end,
        mechanism=market.mechanism,
        winner=market.winning_position,
        span=span,
    )
