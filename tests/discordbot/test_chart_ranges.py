"""Issue 23 item 7: charts a member can read at any scale — ticks with units, a time range (1 h,
24 h, all) on the chart's buttons and `/market chart`, the opening prices first, a dash pattern
per outcome, pools that do not start at 100 % — through the strict fake Discord."""

from __future__ import annotations

import datetime as dt

import pytest
from matplotlib import dates as mdates

from discordbot import charts

from .conftest import db, make_market
from .harness import DEFERRED, UPDATE, buttons
from .test_charts import T0, chart_of, png_size

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (dt.timedelta(seconds=90), "00:01:00"),
        (dt.timedelta(minutes=35), "00:30"),
        (dt.timedelta(hours=20), "12:00"),
        (dt.timedelta(days=4), "Nov 22 00:00"),
        (dt.timedelta(days=40), "Dec 01"),
        (dt.timedelta(days=700), "Nov 20 2027"),
    ],
)
def test_every_time_tick_carries_its_unit(span, expected):
    start, end = mdates.date2num([T0, T0 + span]).tolist()
    label = charts.time_formatter(start, end)
    tick = (
        T0
        + {
            "00:01:00": dt.timedelta(minutes=1),
            "00:30": dt.timedelta(minutes=30),
            "12:00": dt.timedelta(hours=12),
            "Nov 22 00:00": dt.timedelta(days=2),
            "Dec 01": dt.timedelta(days=11),
            "Nov 20 2027": dt.timedelta(days=365),
        }[expected]
    )
    text = label(mdates.date2num(tick))
    assert text == expected
    assert not text.isdigit()  # never a bare "35"


def test_each_outcome_has_its_own_dash_pattern():
    assert len(set(charts.LINESTYLES)) == len(charts.LINESTYLES) == 10


def test_a_pool_holds_its_opening_shares_until_two_sides_are_staked():
    points = [
        (T0, [1 / 3] * 3),
        (T0 + dt.timedelta(minutes=1), [1.0, 0.0, 0.0]),
        (T0 + dt.timedelta(minutes=2), [0.25, 0.75, 0.0]),
    ]
    shown = [p for _, p in charts.pool_display(points)]
    assert shown == [[1 / 3] * 3, [1 / 3] * 3, [0.25, 0.75, 0.0]]


def test_a_range_starts_at_the_price_in_force_then():
    points = [
        (T0, [0.5, 0.5]),
        (T0 + dt.timedelta(hours=1), [0.6, 0.4]),
        (T0 + dt.timedelta(hours=30), [0.7, 0.3]),
    ]
    end = T0 + dt.timedelta(hours=30, minutes=30)
    assert charts.window(points, end, "all") == points
    day = charts.window(points, end, "24h")
    assert day[0] == (end - dt.timedelta(hours=24), [0.6, 0.4]) and day[1:] == points[2:]
    hour = charts.window(points, end, "1h")
    assert [p for _, p in hour] == [[0.6, 0.4], [0.7, 0.3]]


async def test_the_chart_starts_at_the_opening_prices(harness, members):
    market = await make_market(harness, creator=members.alice.id, outcomes=("A", "B", "C"))
    await harness.send(
        harness.command(
            "bet", members.bob, confirm=False, market=str(market.id), outcome="B", amount=200
        )
    )
    data = await db(harness, charts.chart_data, market=market)
    assert data.points[0][1] == [1 / 3] * 3
    assert abs((data.points[0][0] - market.created_at).total_seconds()) < 1


async def test_market_chart_takes_a_range_and_its_buttons_redraw_in_place(harness, members):
    market = await make_market(harness, creator=members.alice.id)
    ex = await harness.send(
        harness.command("market chart", members.bob, market=str(market.id), range="1h")
    )
    assert ex.response_type == DEFERRED and not ex.rejected
    _, png_hour = chart_of(harness, ex)
    row = buttons(ex.reply)
    assert [b["label"] for b in row] == ["1 h", "24 h", "All"]
    assert [b.get("disabled", False) for b in row] == [True, False, False]
    assert all(b["custom_id"].startswith(f"pm:chartr:{market.id}:") for b in row)

    clicked = await harness.send(harness.click(ex.reply, members.carol, label="All"))
    assert not clicked.rejected
    assert clicked.response_type in (UPDATE, 6)  # the chart message is edited in place
    edited = harness.fake.message(int(ex.reply["id"]))
    assert [b.get("disabled", False) for b in buttons(edited)] == [False, False, True]
    png_all = harness.fake.attachment(edited, "chart.png")
    assert png_size(png_all)[0] == 800 and png_all != png_hour


async def test_the_chart_button_offers_the_ranges(harness, members):
    from .test_charts import market_message

    _, message = await market_message(harness, members)
    ex = await harness.send(harness.click(message, members.bob, label="Chart"))
    assert ex.ephemeral and [b["label"] for b in buttons(ex.reply)] == ["1 h", "24 h", "All"]
    day = await harness.send(harness.click(ex.reply, members.bob, label="24 h"))
    assert not day.rejected
