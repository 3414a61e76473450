"""Price charts in Discord (issue 13): the Chart button and `/market chart` post a PNG of the
market's price history in an embed, rendered once per market and trade count; and the renderer
itself, with no database."""

from __future__ import annotations

import datetime as dt
import io
import warnings

import pytest
from matplotlib import image as mpimg

from discordbot import charts
from markets.errors import MSG_MARKET_NOT_FOUND

from .conftest import db, make_market
from .harness import DEFERRED, buttons

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
LONG_LABELS = [
    f"{i}: 🚀 東京タワー Ünïcödé «option» with $ signs and a very long tail " + "x" * 30
    for i in range(10)
]


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, decoded by matplotlib (so a broken file fails here)."""
    assert png[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    return pixels.shape[1], pixels.shape[0]


def history(n: int, trades: int) -> list[tuple[dt.datetime, list[float]]]:
    points = [(T0, [1 / n] * n)]
    weights = [1.0] * n
    for k in range(trades):
        weights[k % n] *= 1.05 + (k % 7) / 100
        total = sum(weights)
        points.append((T0 + dt.timedelta(minutes=5 * (k + 1)), [w / total for w in weights]))
    return points


# --- The renderer, no database ----------------------------------------------------------------


def test_render_png_draws_a_chart_of_the_expected_size():
    data = charts.ChartData(
        title="#1 Will it rain?",
        labels=["Yes", "No"],
        points=history(2, 1000),
        end=T0 + dt.timedelta(days=4),
    )
    before = charts.render_count()
    width, height = png_size(charts.render_png(data))
    assert width == 800 and 400 <= height <= 500
    assert charts.render_count() == before + 1


def test_render_png_handles_ten_long_unicode_outcomes_without_warnings():
    data = charts.ChartData(
        title="#2 " + "🎉 Quelle équipe gagnera? 誰が勝つ? " * 20,
        labels=LONG_LABELS,
        points=history(10, 300),
        end=T0 + dt.timedelta(days=1),
        mechanism="parimutuel",
        winner=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn once per character
        png = charts.render_png(data)
    width, height = png_size(png)
    two_outcomes = png_size(charts.render_png(charts.ChartData("#3 q", ["A", "B"], [], T0)))
    assert width == 800 and height > two_outcomes[1]  # five legend rows instead of one


def test_render_png_of_a_market_without_history_or_with_one_instant():
    empty = charts.ChartData(title="#4 q", labels=["A", "B"], points=[], end=T0)
    assert png_size(charts.render_png(empty))[0] == 800
    instant = charts.ChartData(title="#4 q", labels=["A", "B"], points=history(2, 0), end=T0)
    assert png_size(charts.render_png(instant))[0] == 800


def test_display_text_keeps_what_the_font_draws_and_cuts_the_rest():
    assert charts.display_text("Yes", 34) == "Yes"
    assert charts.display_text("Ünïcödé «ok» — 50 €", 34) == "Ünïcödé «ok» — 50 €"
    # Emoji and CJK are not in DejaVu Sans: one □ per run instead of tofu and warnings.
    assert charts.display_text("Go 🚀🚀 東京 now", 34) == "Go □ □ now"
    assert charts.display_text("👍🏽", 34) == "□"
    assert charts.display_text("#4 🎉 Party 🎉 time?", 34, missing="") == "#4 Party time?"
    assert charts.display_text("costs $5 or $6", 34) == r"costs \$5 or \$6"
    cut = charts.display_text("a" * 100, 34)
    assert len(cut) == 34 and cut.endswith("…")
    assert charts.display_text("two\nlines\t here", 34) == "two lines here"


def test_downsample_keeps_the_ends_and_every_extreme():
    xs = [float(i) for i in range(1000)]
    ys = [50.0] * 1000
    ys[333], ys[777] = 99.0, 1.0
    sx, sy = charts.downsample(xs, ys, 25)
    assert len(sx) <= 100 and sx == sorted(sx)
    assert (sx[0], sx[-1]) == (0.0, 999.0)
    assert 99.0 in sy and 1.0 in sy
    assert charts.downsample(xs[:50], ys[:50], 25) == (xs[:50], ys[:50])


# --- Through the bot --------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def chart_of(harness, exchange) -> tuple[dict, bytes]:
    message = exchange.reply
    (embed,) = message["embeds"]
    assert embed["image"]["url"] == "attachment://chart.png"
    return embed, harness.fake.attachment(message, "chart.png")


async def market_message(harness, members, **kwargs):
    ex = await harness.send(
        harness.command(
            "market create",
            members.alice,
            question=kwargs.pop("question", "Will the bridge open in May?"),
            outcomes=kwargs.pop("outcomes", "Yes | No"),
            duration="3d",
            **kwargs,
        )
    )
    message = ex.reply
    return int(message["embeds"][0]["title"].split()[0].lstrip("#")), message


@pytestmark_db
async def test_chart_button_posts_a_private_png_and_a_second_click_uses_the_cache(harness, members):
    market_id, message = await market_message(harness, members)
    assert "Chart" in [b.get("label") for b in buttons(message)]
    assert any(b.get("custom_id") == f"pm:chart:{market_id}" for b in buttons(message))

    before = charts.render_count()
    first = await harness.send(harness.click(message, members.bob, label="Chart"))
    assert first.response_type == DEFERRED and first.ephemeral
    assert first.first_response_seconds < 3  # deferred before any database work or render
    embed, png = chart_of(harness, first)
    assert f"#{market_id}" in embed["title"] and "0 trades" in embed["footer"]["text"]
    assert png_size(png)[0] == 800
    assert charts.render_count() == before + 1

    again = await harness.send(harness.click(message, members.carol, label="Chart"))
    assert chart_of(harness, again)[1] == png
    assert charts.render_count() == before + 1  # served from the cache

    await harness.send(
        harness.command("bet", members.bob, market=str(market_id), outcome="No", amount=300)
    )
    traded = await harness.send(harness.click(message, members.carol, label="Chart"))
    embed, png_after = chart_of(harness, traded)
    assert "1 trade " in embed["footer"]["text"] and png_after != png
    assert charts.render_count() == before + 2


@pytestmark_db
async def test_market_chart_command_posts_a_public_pool_chart(harness, members):
    market = await make_market(
        harness, creator=members.alice.id, mechanism="parimutuel", outcomes=("Red", "Blue", "Green")
    )
    for who, outcome, amount in ((members.bob, "Red", 100), (members.carol, "Blue", 300)):
        ex = await harness.send(
            harness.command("bet", who, market=str(market.id), outcome=outcome, amount=amount)
        )
        assert not ex.rejected
    ex = await harness.send(harness.command("market chart", members.bob, market=f"#{market.id}"))
    assert ex.response_type == DEFERRED and not ex.ephemeral
    embed, png = chart_of(harness, ex)
    assert "share of the pool" in embed["footer"]["text"] and "2 trades" in embed["footer"]["text"]
    assert png_size(png)[0] == 800

    data = await db(harness, charts.chart_data, market=market)
    assert [p for _, p in data.points] == [[1 / 3] * 3, [1.0, 0.0, 0.0], [0.25, 0.75, 0.0]]


@pytestmark_db
async def test_chart_of_a_market_without_trades_is_flat_lines(harness, members):
    market = await make_market(harness, creator=members.alice.id, outcomes=("A", "B", "C", "D"))
    ex = await harness.send(harness.command("market chart", members.bob, market=str(market.id)))
    assert png_size(chart_of(harness, ex)[1])[0] == 800
    data = await db(harness, charts.chart_data, market=market)
    assert [p for _, p in data.points] == [[0.25] * 4]
    assert data.end >= data.points[0][0]


@pytestmark_db
async def test_chart_of_ten_outcomes_with_long_unicode_names(harness, members):
    market = await make_market(harness, creator=members.alice.id, outcomes=tuple(LONG_LABELS))
    ex = await harness.send(
        harness.command(
            "bet", members.bob, market=str(market.id), outcome=LONG_LABELS[7], amount=200
        )
    )
    assert "You bought" in ex.text
    ex = await harness.send(harness.command("market chart", members.bob, market=str(market.id)))
    width, height = png_size(chart_of(harness, ex)[1])
    assert width == 800 and height > 500


@pytestmark_db
async def test_chart_of_an_unknown_market_says_so(harness, members):
    ex = await harness.send(harness.command("market chart", members.bob, market="#999999"))
    assert ex.ephemeral and ex.text == MSG_MARKET_NOT_FOUND.format(market_id=999999)
    assert not ex.reply.get("attachments")
