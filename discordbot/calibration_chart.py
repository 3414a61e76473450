"""The calibration chart (`/calibration`, docs/domain.md §9) as a PNG: for each bucket of
probability paid, how often (weighted by points) the outcomes bought came true, against the
diagonal of perfect calibration. Drawn like the price chart (`discordbot.charts`: the same
colours, fonts, object-oriented matplotlib, the same render thread)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from betting.calibration import Bucket

from .charts import BACKGROUND, COLOURS, GRID, MUTED, PLOT_BACKGROUND, TEXT, display_text

WIDTH_PX, HEIGHT_PX, DPI = 800, 560, 100


def render_calibration_png(buckets: Sequence[Bucket], *, title: str, score: str) -> bytes:
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.09, 0.12, 0.86, 0.72))
    ax.set_facecolor(PLOT_BACKGROUND)
    for side in ax.spines.values():
        side.set_color(GRID)
    ax.tick_params(colors=MUTED, labelcolor=TEXT, labelsize=9)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(ticker.MultipleLocator(10))
        axis.set_major_formatter(ticker.PercentFormatter(decimals=0))
    ax.set_xlabel("Probability paid", color=MUTED, fontsize=10)
    ax.set_ylabel("How often it came true (by points)", color=MUTED, fontsize=10)
    ax.plot([0, 100], [0, 100], color=MUTED, linestyle=(0, (4, 3)), linewidth=1.4)
    filled = [b for b in buckets if b.observed is not None]
    if filled:
        ax.bar(
            [(b.low + b.high) * 50 for b in filled],
            [b.observed * 100 for b in filled],  # type: ignore[operator]
            width=[(b.high - b.low) * 100 * 0.86 for b in filled],
            color=COLOURS[0],
            alpha=0.85,
        )
        ax.plot(
            [b.predicted * 100 for b in filled],  # type: ignore[operator]
            [b.observed * 100 for b in filled],  # type: ignore[operator]
            color=COLOURS[1],
            marker="o",
            linewidth=1.6,
        )
        for b in filled:
            ax.text(
                (b.low + b.high) * 50,
                2,
                f"{b.forecasts}",
                color=TEXT,
                fontsize=8,
                ha="center",
            )
    else:
        ax.text(50, 50, "No buys in resolved markets yet", color=MUTED, ha="center")
    fig.text(
        0.09,
        0.95,
        display_text(title, 70, missing=""),
        color=TEXT,
        fontsize=12.5,
        fontweight="bold",
        va="center",
    )
    fig.text(
        0.09,
        0.905,
        f"{score} · bars: share of points on outcomes that won · dots: mean price paid · "
        "numbers: buys",
        color=MUTED,
        fontsize=9,
        va="center",
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=BACKGROUND, pil_kwargs={"compress_level": 3})
    return buffer.getvalue()
