"""Issue 26 part A through the strict fake Discord: calibration (`/leaderboard calibration`,
`/portfolio`, `/calibration` and its PNG), the holders of a market-maker market on the market
message and in `/market holders`, and `/market audit`'s CSV; and every new embed at the limits'
longest (DOMAIN §8)."""

from __future__ import annotations

import csv
import io
import os
import random
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from betting.calibration import CalibrationRow, Forecast, brier, buckets
from betting.selectors import RestingLevel
from betting.services import bet_place
from discordbot import render
from discordbot.calibration_chart import render_calibration_png
from discordbot.cogs.community import AUDIT_MAX_BYTES, HOLDERS_PAGE_SIZE
from discordbot.render import community
from discordbot.results import HolderPage, HolderRow, Holders
from markets import services
from points.models import GuildSettings
from points.rules import Actor
from points.services import guild_settings_get_or_create

from .conftest import db, make_market
from .harness import buttons
from .test_render import SETTINGS, assert_fits, label, summaries, text

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SEEN = 0


async def trade(harness, market_id: int, user_id: int, outcome: int, amount: int):
    global SEEN
    SEEN += 1
    return await db(
        harness,
        bet_place,
        market_id=market_id,
        user_id=user_id,
        outcome=outcome,
        amount=amount,
        idempotency_key=f"community:{market_id}:{user_id}:{SEEN}",
    )


async def resolve(harness, market_id: int, outcome: int, mod_id: int) -> None:
    actor = Actor.member(mod_id, manage_guild=True)
    await db(
        harness,
        services.market_close,
        market_id=market_id,
        idempotency_key=f"close:{market_id}",
        actor=actor,
    )
    await db(
        harness,
        services.market_resolve,
        market_id=market_id,
        outcome=outcome,
        reason="the result",
        idempotency_key=f"res:{market_id}",
        actor=actor,
    )


def set_fee(*, guild_id: int, fee_bps: int) -> None:
    GuildSettings.objects.filter(pk=guild_settings_get_or_create(guild_id=guild_id).pk).update(
        fee_bps=fee_bps
    )


# --- Rendering at the limits' longest ---------------------------------------------------------


@SETTINGS
@given(summaries(), st.lists(text, min_size=30, max_size=30))
def test_market_message_with_every_outcomes_top_holders_fits(summary, names):
    rows = [
        HolderRow(2**63 - 1 - i, i % len(summary.outcomes), 10**15)
        for i in range(3 * len(summary.outcomes))
    ]
    resting = tuple(
        RestingLevel(o.position, side, 999_999 - i, 10**15, 500)
        for o in summary.outcomes
        for side in ("buy", "sell")
        for i in range(4)
    )
    holders = Holders(rows, {r.user_id: names[i] for i, r in enumerate(rows)}, resting)
    embed = render.market_embed(summary, top=holders)
    assert_fits(embed)
    # The outcomes are never pushed out by the holders.
    assert embed.description.endswith("\n".join(render.outcome_lines(summary)))


@SETTINGS
@given(summaries(), st.lists(text, min_size=HOLDERS_PAGE_SIZE, max_size=HOLDERS_PAGE_SIZE))
def test_holders_page_fits(summary, names):
    rows = [
        HolderRow(2**63 - 1 - i, i % len(summary.outcomes), 10**15)
        for i in range(HOLDERS_PAGE_SIZE)
    ]
    page = HolderPage(
        rows, {r.user_id: names[i] for i, r in enumerate(rows)}, 10**6, 10**6, 10**9, 0
    )
    assert_fits(community.holders_page_embed(summary, page))


@SETTINGS
@given(st.lists(label, min_size=10, max_size=10), text)
def test_calibration_leaderboard_portfolio_line_and_chart_embed_fit(names, name):
    rows = [CalibrationRow(i + 1, 2**63 - 1 - i, 0.25, 10**9, 10**12) for i in range(10)]
    assert_fits(
        render.calibration_leaderboard_embed(
            rows, names=dict(zip([r.user_id for r in rows], names, strict=True))
        )
    )
    for row in (None, rows[0], CalibrationRow(0, 1, 1.0, 4, 10**12)):
        assert_fits(render.calibration_embed(row, name=name))


def test_calibration_line_says_score_rank_or_what_is_missing():
    assert community.calibration_line(None) == (
        "Calibration: no buys in a resolved market-maker market yet."
    )
    assert community.calibration_line(CalibrationRow(0, 1, 1 / 9, 3, 3)) == (
        "Calibration: Brier **0.111** over 3 resolved markets · ranked after 2 more"
    )
    assert community.calibration_line(CalibrationRow(2, 1, 5 / 18, 7, 9)) == (
        "Calibration: Brier **0.278** over 7 resolved markets · #2 on `/leaderboard calibration`"
    )


# --- Through the bot --------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
async def test_market_show_lists_each_outcomes_top_holders_and_holders_pages_all(harness, members):
    m = await make_market(harness, creator=members.alice.id)
    for member in (members.alice, members.bob, members.carol):
        await harness.send(harness.command("balance", member))  # they are in the directory
    await trade(harness, m.id, members.bob.id, 0, 100)
    await trade(harness, m.id, members.carol.id, 0, 20)
    await trade(harness, m.id, members.alice.id, 1, 50)

    ex = await harness.send(harness.command("market show", members.alice, market=str(m.id)))
    (embed,) = ex.reply["embeds"]
    (field,) = [f for f in embed["fields"] if f["name"] == "Top holders (shares)"]
    yes, no = field["value"].split("\n")
    assert yes.startswith("**Yes**: Bob Builder ") and " · Carol Danvers " in yes
    assert no.startswith("**No**: Alice Liddell ")

    page = await harness.send(harness.command("market holders", members.bob, market=f"#{m.id}"))
    assert page.ephemeral
    (embed,) = page.reply["embeds"]
    lines = embed["description"].split("\n")
    assert [line.split(" — ")[0] for line in lines] == [
        "**1.** Bob Builder",
        "**2.** Carol Danvers",
        "**3.** Alice Liddell",
    ]
    assert "shares of **Yes**" in lines[0] and "shares of **No**" in lines[2]
    assert embed["footer"]["text"] == "Holders · page 1 of 1 · 3 holdings"
    assert [b["disabled"] for b in buttons(page.reply)] == [True, True]


@pytestmark_db
async def test_holders_pages_past_twenty(harness, members):
    m = await make_market(harness, creator=members.alice.id)
    for i in range(HOLDERS_PAGE_SIZE + 3):
        await trade(harness, m.id, 444_444_444_444_444_000 + i, i % 2, 10 + i)
    first = await harness.send(harness.command("market holders", members.bob, market=str(m.id)))
    (embed,) = first.reply["embeds"]
    assert embed["footer"]["text"] == "Holders · page 1 of 2 · 23 holdings"
    assert len(embed["description"].split("\n")) == HOLDERS_PAGE_SIZE
    second = await harness.send(harness.click(first.reply, members.bob, label="Next ▶"))
    (embed,) = second.reply["embeds"]
    assert embed["footer"]["text"] == "Holders · page 2 of 2 · 23 holdings"
    assert embed["description"].split("\n")[0].startswith("**21.** ")


@pytestmark_db
async def test_market_audit_is_a_csv_that_proves_collateral_at_every_step(harness, members):
    await db(harness, set_fee, guild_id=harness.guild_id, fee_bps=150)
    m = await make_market(harness, creator=members.alice.id, outcomes=("A", "B", "C"))
    await trade(harness, m.id, members.bob.id, 0, 100)
    await trade(harness, m.id, members.carol.id, 2, 35)
    await trade(harness, m.id, members.bob.id, 1, 7)
    from betting.services import shares_sell

    await db(
        harness,
        shares_sell,
        market_id=m.id,
        user_id=members.bob.id,
        outcome=0,
        shares=None,
        idempotency_key="community:sell",
    )
    await resolve(harness, m.id, 2, members.mod.id)

    ex = await harness.send(harness.command("market audit", members.carol, market=str(m.id)))
    assert ex.ephemeral
    assert ex.text.startswith(f"The audit of #{m.id}: every event, trade and transfer in order")
    data = harness.fake.attachment(ex.reply, f"market-{m.id}-audit.csv")
    assert len(data) <= AUDIT_MAX_BYTES
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    trades = [r for r in rows if r["record"] == "trade"]
    assert [r["what"] for r in trades] == ["buy", "buy", "buy", "sell"]
    assert all(r["check_4_5"].startswith("ok: pool + shares = ") for r in trades)
    # The market opens: the liquidity, then its event; §4.5 holds from the first line.
    assert rows[0]["what"].startswith("liquidity: treasury")
    assert rows[0]["check_4_5"] == "ok: pool + shares = 1000 x 1000000 for every outcome"
    assert rows[1]["what"] == "market_created"
    assert {r["what"].split(":")[0] for r in rows if r["record"] == "transfer"} >= {
        "liquidity",
        "buy",
        "fee",
        "sell",
        "payout",
        "liquidity_return",
    }
    assert rows[-1]["record"] == "summary" and rows[-1]["check_4_5"] == "ok"
    assert rows[-1]["escrow_after"] == "0"
    # The last trade's line: pools + shares held = escrow × SHARE_SCALE, checkable by hand.
    last = trades[-1]
    escrow = int(last["escrow_after"])
    pools = [int(p) for p in last["pools_after"].split(";")]
    held = [int(h) for h in last["shares_held_after"].split(";")]
    assert [p + h for p, h in zip(pools, held, strict=True)] == [escrow * 1_000_000] * 3


@pytestmark_db
async def test_calibration_leaderboard_portfolio_and_chart(harness, members):
    for member in (members.bob, members.carol):
        await harness.send(harness.command("balance", member))
    for n in range(5):
        m = await make_market(harness, creator=members.alice.id, question=f"Question {n}?")
        await trade(harness, m.id, members.bob.id, 0, 40)
        await trade(harness, m.id, members.carol.id, 1, 40 + n)
        await resolve(harness, m.id, 0 if n < 4 else 1, members.mod.id)

    board = await harness.send(harness.command("leaderboard", members.alice, kind="calibration"))
    (embed,) = board.reply["embeds"]
    assert embed["title"] == community.CALIBRATION_TITLE
    first, second = embed["description"].split("\n")
    assert first.startswith("**1.** Bob Builder — **0.") and first.endswith("5 markets, 5 buys")
    assert second.startswith("**2.** Carol Danvers — **0.")

    mine = await harness.send(harness.command("portfolio", members.carol))
    (embed,) = mine.reply["embeds"]
    assert "Calibration: Brier **0." in embed["description"]
    assert "#2 on `/leaderboard calibration`" in embed["description"]
    none = await harness.send(harness.command("portfolio", members.alice))
    assert "no buys in a resolved market-maker market yet" in none.reply["embeds"][0]["description"]

    ex = await harness.send(harness.command("calibration", members.alice, member=members.bob))
    assert not ex.ephemeral
    (embed,) = ex.reply["embeds"]
    assert embed["title"] == "Calibration of Bob Builder"
    assert embed["image"]["url"] == "attachment://calibration.png"
    png = harness.fake.attachment(ex.reply, "calibration.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_calibration_chart_of_two_hundred_simulated_buys():
    """The picture in docs/screenshots/calibration.png: a member slightly over-confident on
    long shots, over two hundred buys of every size (`UPDATE_SCREENSHOTS=1` rewrites it)."""
    rng = random.Random(26)
    forecasts = []
    for _ in range(200):
        p = Fraction(rng.randint(3, 97), 100)
        true = min(Fraction(1), p * Fraction(4, 5) + Fraction(1, 10))
        forecasts.append(Forecast(p, rng.random() < true, rng.randint(5, 400)))
    score = f"Brier {community.brier_text(brier(forecasts))}"
    png = render_calibration_png(
        buckets(forecasts), title="Calibration of Alice Liddell", score=score
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (SCREENSHOTS / "calibration.png").write_bytes(png)


@pytestmark_db
async def test_holders_of_a_pool_are_its_stakes(harness, members):
    m = await make_market(harness, creator=members.alice.id, mechanism="parimutuel")
    await harness.send(harness.command("balance", members.bob))
    await trade(harness, m.id, members.bob.id, 1, 70)
    ex = await harness.send(harness.command("market holders", members.alice, market=str(m.id)))
    (embed,) = ex.reply["embeds"]
    assert embed["description"] == "**1.** Bob Builder — 70 points staked on **No**"
