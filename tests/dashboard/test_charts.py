"""The server-side price chart (dashboard/charts.py): pure, so synthetic data is enough."""

import datetime as dt
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import charts

SVG = "{http://www.w3.org/2000/svg}"
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def random_walk(n_outcomes: int, n_trades: int, *, seed: int = 1, spread=dt.timedelta(days=3)):
    rng = random.Random(seed)
    weights = [1.0] * n_outcomes
    history = [(T0, [1 / n_outcomes] * n_outcomes)]
    for k in range(1, n_trades + 1):
        i = rng.randrange(n_outcomes)
        weights[i] *= rng.uniform(0.8, 1.3)
        total = sum(weights)
        history.append((T0 + spread * (k / n_trades), [w / total for w in weights]))
    return history


def polylines(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f".//{SVG}polyline")


def vertices(line: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in line.get("points").split()]


# --- downsample_m4 ---------------------------------------------------------------------------


def test_m4_keeps_short_series_unchanged():
    points = [(float(i), float(i % 3)) for i in range(10)]
    assert charts.downsample_m4(points, 5) == points


def test_m4_keeps_every_extreme_per_bucket_and_the_ends():
    rng = random.Random(3)
    points = [(i / 10, rng.random()) for i in range(10_000)]
    points[4321] = (points[4321][0], 5.0)  # one spike
    points[777] = (points[777][0], -5.0)  # one dip
    kept = charts.downsample_m4(points, 100)
    assert len(kept) <= 400
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (points[4321][0], 5.0) in kept and (points[777][0], -5.0) in kept
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)
    assert len(set(kept)) == len(kept)


@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=400),
    st.integers(1, 40),
)
def test_m4_is_a_sorted_subset_no_larger_than_four_per_bucket(ys, buckets):
    points = [(float(i), y) for i, y in enumerate(ys)]
    kept = charts.downsample_m4(points, buckets)
    assert set(kept) <= set(points)
    if len(points) > 4 * buckets:
        assert len(kept) <= 4 * buckets
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert max(y for _, y in kept) == max(ys) and min(y for _, y in kept) == min(ys)


def test_m4_with_every_point_at_one_instant():
    points = [(1.0, float(v)) for v in (3, 1, 4, 1, 5, 9, 2, 6, 5, 3)]
    kept = charts.downsample_m4(points, 1)
    assert kept == [(1.0, 3.0), (1.0, 1.0), (1.0, 9.0), (1.0, 3.0)]


# --- price_chart_svg -------------------------------------------------------------------------


def test_chart_of_ten_outcomes_and_thousands_of_trades_stays_small_and_complete():
    labels = [f"Outcome {i}" for i in range(10)]
    history = random_walk(10, 5000)
    svg = charts.price_chart_svg(history, labels, width=760, trades=5000)
    root = ET.fromstring(svg)  # well-formed XML
    lines = polylines(svg)
    assert len(lines) == 10
    buckets = (760 - 44 - 16) // 4
    for line in lines:
        # ≤ 4 points per bucket, each drawn as a step (2 vertices), plus the hold to the end.
        assert len(vertices(line)) <= 2 * 4 * buckets + 2
    assert len(svg) < 400_000
    # Ten distinct colours and ten distinct dash patterns: colour is not the only signal.
    assert len({line.get("stroke") for line in lines}) == 10
    assert len({line.get("stroke-dasharray", "") for line in lines}) == 10
    desc = root.find(f"{SVG}desc").text
    assert "5000 trades" in desc and "Outcome 9" in desc


def test_chart_line_ends_at_the_current_price_and_the_given_end():
    history = [(T0, [0.5, 0.5]), (T0 + dt.timedelta(hours=1), [0.8, 0.2])]
    svg = charts.price_chart_svg(
        history, ["Yes", "No"], end=T0 + dt.timedelta(hours=2), width=400, height=300
    )
    yes, no = (vertices(line) for line in polylines(svg))
    # Plot: 12..(300-30) vertically, 44..(400-16) horizontally; y = top + (1 - p) * height.
    plot_h = 300 - 12 - 30
    assert yes[0] == (44.0, pytest.approx(12 + 0.5 * plot_h, abs=0.1))
    assert yes[-1] == (384.0, pytest.approx(12 + 0.2 * plot_h, abs=0.1))
    assert no[-1] == (384.0, pytest.approx(12 + 0.8 * plot_h, abs=0.1))
    # The price holds at 50 % until the trade at the half-way mark, then steps.
    assert (214.0, pytest.approx(12 + 0.5 * plot_h, abs=0.1)) in yes


def test_chart_escapes_labels_and_title():
    evil = '<script>alert("x")</script> & "quotes"'
    svg = charts.price_chart_svg(
        [(T0, [0.5, 0.5]), (T0 + dt.timedelta(minutes=5), [0.6, 0.4])],
        [evil, "No"],
        title="Market <b>#1</b>",
    )
    assert "<script>" not in svg and "<b>" not in svg
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "Market <b>#1</b>"
    assert evil in ET.tostring(root, encoding="unicode", method="text")


def test_chart_without_history_says_so():
    svg = charts.price_chart_svg([], ["Yes", "No"])
    assert "No price history yet" in svg
    ET.fromstring(svg)
    assert charts.price_chart_svg([(T0, [1.0])], []).count("No price history") == 1


def test_chart_ignores_snapshots_of_the_wrong_width():
    history = [(T0, [0.5, 0.5]), (T0 + dt.timedelta(seconds=1), [0.1, 0.2, 0.7])]
    assert len(vertices(polylines(charts.price_chart_svg(history, ["A", "B"]))[0])) == 2


@pytest.mark.parametrize(
    ("span", "pattern"),
    [
        (dt.timedelta(minutes=30), r">\d\d:\d\d:\d\d<"),
        (dt.timedelta(hours=10), r">\d\d:\d\d<"),
        (dt.timedelta(days=10), r">Jan \d+ \d\d:\d\d<"),
        (dt.timedelta(days=200), r">20\d\d-\d\d-\d\d<"),
    ],
)
def test_chart_time_axis_labels_fit_the_span(span, pattern):
    svg = charts.price_chart_svg([(T0, [0.5, 0.5]), (T0 + span, [0.4, 0.6])], ["Yes", "No"])
    assert re.search(pattern, svg)


def test_every_outcome_style_is_distinct_and_every_marker_renders():
    styles = [charts.outcome_style(i) for i in range(charts.MAX_OUTCOMES)]
    assert len({s.colour for s in styles}) == len({s.dash for s in styles}) == 10
    assert len({s.marker for s in styles}) == 10
    for i in range(charts.MAX_OUTCOMES):
        swatch = charts.legend_swatch_svg(i)
        ET.fromstring(swatch)
        assert 'aria-hidden="true"' in swatch and styles[i].colour in swatch


def test_dashboard_css_bars_use_the_chart_colours():
    css = (Path(charts.__file__).parent / "static/dashboard/dashboard.css").read_text().lower()
    for i, colour in enumerate(charts.COLOURS):
        assert f"--o{i}: {colour.lower()};" in css


def test_known_at_is_marked_and_the_reversed_span_shaded():
    """docs/domain.md §6.2: the line at `known_at` and the shaded span after it, said in the
    chart's description too; without `known_at` neither appears."""
    history = [
        (T0 + dt.timedelta(minutes=m), [p, 1 - p]) for m, p in ((0, 0.5), (10, 0.6), (20, 0.9))
    ]
    end = T0 + dt.timedelta(minutes=30)
    marked = charts.price_chart_svg(
        history, ["Yes", "No"], end=end, known_at=T0 + dt.timedelta(minutes=15)
    )
    plain = charts.price_chart_svg(history, ["Yes", "No"], end=end)
    ET.fromstring(marked)  # well-formed
    assert 'class="known-at"' in marked and 'class="reversed-span"' in marked
    rect = re.search(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', marked)
    assert rect is not None
    x, width = float(rect.group(1)), float(rect.group(2))
    assert x == pytest.approx(44 + 700 / 2) and x + width == pytest.approx(44 + 700)
    assert "later trades reversed" in marked
    assert "known-at" not in plain and "reversed" not in plain
