"""Every embed, button, select and modal the bot builds fits Discord's limits (DOMAIN §8) with
long unicode input — astral characters, combining marks, markdown and mentions — by cutting or
paginating, never by failing. Checked twice: with the bot's own `limits.embed_problems` and with
the fake Discord's independent validation."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

import discord
import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from betting.selectors import Portfolio, PositionView
from discordbot import limits, market_ui, render
from discordbot.results import Holding, TradeResult, TraderResult
from markets.selectors import MarketSummary, OutcomeSummary, ProposalSummary
from points.selectors import HistoryRow, LeaderboardRow

from .fake_discord import check_components, check_embed, check_message, check_modal

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)

# Text as members might type it: any printable unicode including astral planes and markdown.
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=500
).filter(lambda s: s.strip())
label = text.map(lambda s: s[:100])
# A description: up to 1,000 characters over several lines, markdown and quotes included.
description = st.one_of(
    st.just(""),
    st.text(
        alphabet=st.one_of(
            st.characters(blacklist_categories=("Cc", "Cs")), st.sampled_from("\n>*_`|@")
        ),
        max_size=1000,
    ),
)
statuses = st.sampled_from(["open", "closed", "resolving", "resolved", "cancelled"])


@st.composite
def summaries(draw) -> MarketSummary:
    n = draw(st.integers(2, 10))
    labels = draw(st.lists(label, min_size=n, max_size=n))
    weights = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n))
    total = sum(weights)
    status = draw(statuses)
    winner = draw(st.integers(0, n - 1)) if status == "resolved" else None
    return MarketSummary(
        id=draw(st.integers(1, 2**63 - 1)),
        guild_id=1,
        question=draw(text),
        category=draw(st.one_of(st.just(""), label.map(lambda s: s[:50]))),
        mechanism=draw(st.sampled_from(["amm", "parimutuel"])),
        status=status,
        closes_at=NOW,
        closed_at=None if status == "open" else NOW,
        created_at=NOW,
        creator_id=2**62,
        volume=draw(st.integers(0, 10**15)),
        trade_count=0,
        trader_count=draw(st.integers(0, 10**6)),
        liquidity=1000,
        fee_bps=draw(st.integers(0, 5000)),
        winning_position=winner,
        channel_id=None,
        message_id=None,
        settle_reason=draw(st.one_of(st.just(""), text)),
        outcomes=[OutcomeSummary(i, labels[i], weights[i] / total, 10**9, 0) for i in range(n)],
        description=draw(description),
        proposal=draw(proposals(labels)) if status == "resolving" else None,
    )


@st.composite
def proposals(draw, labels: list[str]) -> ProposalSummary:
    """A proposed result in any of its states: counting down, held by disputes, or waiting for
    a second resolver."""
    position = draw(st.integers(0, len(labels) - 1))
    disputed = draw(st.booleans())
    return ProposalSummary(
        position=position,
        label=labels[position],
        proposed_by_id=2**63 - 1,
        proposed_at=NOW,
        deadline=draw(st.sampled_from([None, NOW])),
        disputed_at=NOW if disputed else None,
        conflicted=draw(st.booleans()),
        round=draw(st.integers(1, 10**6)),
        disputes=draw(st.integers(1, 10**6)) if disputed else 0,
    )


def assert_fits(embed: discord.Embed) -> None:
    assert limits.embed_problems(embed) == []
    check_embed(embed.to_dict(), "embed")


def assert_view_fits(view: discord.ui.View) -> None:
    check_components(view.to_components())


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(summaries())
def test_market_message_fits(summary):
    embed = render.market_embed(summary)
    assert_fits(embed)
    check_message({"embeds": [embed.to_dict()], "components": []})
    assert embed.title.startswith(f"#{summary.id} · ")
    # The criteria never push an outcome out of the message.
    assert embed.description.endswith("\n".join(render.outcome_lines(summary)))


@SETTINGS
@given(st.lists(summaries(), min_size=0, max_size=5), statuses, st.integers(0, 10**6))
def test_market_list_page_fits(markets, status, total):
    assert_fits(
        render.market_list_embed(
            markets, status=status, category="c" * 50, page=3, pages=9, total=total
        )
    )


@SETTINGS
@given(summaries(), label, st.integers(1, 10**15), st.integers(1, 10**12))
def test_trade_reply_fits(summary, outcome_label, amount, shares):
    for kind in ("buy", "stake", "sell"):
        result = TradeResult(summary, kind, 0, outcome_label, amount, 0, shares, 10**15, 0.123)
        assert limits.size(render.trade_text(result)) <= limits.CONTENT


@SETTINGS
@given(st.lists(st.tuples(text, label), min_size=0, max_size=60), text)
def test_portfolio_fits_and_says_what_it_left_out(rows, name):
    positions = [
        PositionView(i, q, "open", "amm", 0, lab, 10**12, 10**9, 0, 0, 10**9, -(10**9), 0.5)
        for i, (q, lab) in enumerate(rows)
    ]
    embed = render.portfolio_embed(Portfolio(1, 1, 10**15, positions), name=name)
    assert_fits(embed)
    if len(rows) > 25:
        assert "more not shown" in embed.footer.text


@SETTINGS
@given(summaries(), st.lists(label, min_size=1, max_size=30))
def test_sell_select_and_position_text_fit(summary, labels):
    holdings = [Holding(i % 10, lab, 10**13, 10**12, 0, 10**12) for i, lab in enumerate(labels)]
    assert limits.size(render.holdings_text(summary, holdings, 10**15)) <= limits.CONTENT
    options = [
        discord.SelectOption(label=limits.fit(h.label, 100), value=str(i), description="d")
        for i, h in enumerate(holdings[:25])
    ]

    async def build() -> discord.ui.View:  # discord.py 2.6 builds views in a running loop only
        view = discord.ui.View(timeout=None)
        view.add_item(market_ui.SellSelect(summary.id, options))
        return view

    assert_view_fits(asyncio.run(build()))


@SETTINGS
@given(summaries())
def test_market_buttons_fit(summary):
    async def build() -> discord.ui.View:
        return market_ui.market_view(summary)

    assert_view_fits(asyncio.run(build()))


@SETTINGS
@given(label, st.integers(1, 2**63 - 1))
def test_modals_fit(outcome_label, market_id):
    async def build():
        from discordbot import interactions
        from discordbot.market_create import create_modal

        buy = interactions.modal(
            f"pm:m:buy:{market_id}:9",
            f"Buy “{outcome_label}” (#{market_id})",
            interactions.text_input(custom_id="amount", label="Amount (points)"),
        )
        create = create_modal(
            mechanism="parimutuel",
            liquidity=10**9,
            question=outcome_label * 5,
            outcomes="|".join([outcome_label] * 10),
        )
        return [buy.to_dict(), create.to_dict()]

    for payload in asyncio.run(build()):
        check_modal(payload)


@SETTINGS
@given(summaries(), text, st.lists(st.integers(1, 2**63 - 1), max_size=10))
def test_notifications_fit(summary, reason, winners):
    payload = {
        "label": summary.outcomes[0].label,
        "total_paid": 10**15,
        "winners": [[str(w), 10**12] for w in winners],
        "reason": reason,
        "total_refunded": 10**15,
        "refunded_count": 10**6,
    }
    for cancelled in (True, False):
        assert_fits(render.settlement_embed(summary, payload, cancelled=cancelled))
        result = TraderResult(2**62, 10**15, 10**14, 10**15 if cancelled else 0)
        dm = render.result_dm(summary, result, cancelled=cancelled, refunded_all=False)
        assert limits.size(dm) <= limits.CONTENT
    how = render.how_text(
        SimpleNamespace(
            resolution_mode="vote",
            resolver_role_ids=[2**63 - 1] * 25,
            min_resolution_votes=25,
            dispute_window_minutes=10_079,
        ),
        creator_id=summary.creator_id,
    )
    assert limits.size(render.closed_dm(summary, refund_hours=120, how=how)) <= limits.CONTENT
    assert limits.size(render.announce_content(summary)) <= limits.CONTENT
    # The resolution notifications (docs/domain.md §6.1), with member text at its longest.
    for deadline in (None, NOW.isoformat()):
        proposal = {
            "label": summary.outcomes[0].label,
            "how": "creator",
            "proposed_by": str(2**63 - 1),
            "deadline": deadline,
            "window_minutes": 10_079,
            "reason": reason,
            "user_id": str(2**63 - 1),
            "disputes": 10**6,
            "first": True,
            "changed_from": summary.outcomes[1].label,
        }
        texts = [
            render.proposed_post(summary, proposal),
            render.proposed_dm(summary, proposal),
            render.dispute_ping(
                summary, proposal, role_ids=[2**63 - 1] * 100, moderators="moderators"
            ),
            render.undone_post(summary, proposal, how=how),
            render.undone_dm(summary, proposal),
            render.result_dm(
                summary,
                TraderResult(2**62, 10**15, 10**14, 0),
                cancelled=False,
                refunded_all=False,
                decision=render.decision_text(summary, proposal),
            ),
        ]
        for t in texts:
            assert limits.size(t) <= limits.CONTENT


@SETTINGS
@given(st.lists(st.integers(-(10**15), 10**15), max_size=25))
def test_history_and_leaderboards_fit(amounts):
    rows = [HistoryRow(i, NOW, "tip", a, "x", "m" * 500, None) for i, a in enumerate(amounts)]
    assert_fits(render.history_embed(rows, page=10**6))
    board = [LeaderboardRow(i + 1, 2**63 - 1, a) for i, a in enumerate(amounts)]
    assert_fits(render.leaderboard_embed(board, kind="balance"))


def test_settings_embed_fits_with_many_roles():
    gs = SimpleNamespace(
        starting_balance=10**12,
        daily_bonus=0,
        max_bet=10**15,
        default_liquidity=10**9,
        fee_bps=5000,
        min_resolution_votes=25,
        auto_refund_hours=8760,
        slippage_bps=5000,
        announce_channel_id=2**63 - 1,
        moderator_channel_id=2**63 - 1,
        creator_role_ids=[2**63 - 1] * 250,
        resolver_role_ids=[],
        resolution_mode="vote",
        dispute_window_minutes=10_079,
        conflict_of_interest=True,
    )
    assert_fits(render.settings_embed(gs))


def test_settings_embed_fits_with_seasons_at_their_longest():
    """Issue 26: the seasons line with 24 custom end dates, the largest role id and a season
    number in the hundred thousands, beside 250 creator roles."""
    ends = [
        (dt.datetime(2090, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=40 * i)).isoformat()
        for i in range(24)
    ]
    gs = SimpleNamespace(
        **{**django_settings.PM_GUILD_DEFAULTS, "slippage_bps": 5000},
        announce_channel_id=2**63 - 1,
        moderator_channel_id=2**63 - 1,
        creator_role_ids=[2**63 - 1] * 250,
        resolver_role_ids=[2**63 - 1] * 250,
        quick_amounts=[10**15] * 5,
        season_length="custom",
        season_ends=ends,
        season_role_id=2**63 - 1,
        season_reset=True,
    )
    running = SimpleNamespace(number=10**5, ends_at=dt.datetime(2090, 1, 2, tzinfo=dt.UTC))
    embed = render.settings_embed(gs, season=running)
    assert_fits(embed)
    (field,) = [f for f in embed.fields if f.name == "Seasons"]
    # Each date as the member typed it: the last day of the season (stored: the midnight after).
    assert field.value.startswith("Seasons follow custom dates, ending on 2089-12-31, 2090-02-09")
    assert field.value.count(", 20") == 23 and "season 100000 ends <t:" in field.value


@pytest.mark.parametrize(
    ("mode", "votes", "window", "conflict", "words"),
    [
        ("vote", 2, 60, True,
         "resolvers vote (2 votes needed) · dispute window 1 hour · a dispute holds it at most "
         "2 days · conflict-of-interest rule on"),
        ("vote", 1, 0, False,
         "resolvers vote (1 vote needed) · no dispute window · a dispute holds it at most 2 days "
         "· conflict-of-interest rule off"),
        ("creator", 2, 10_080, True,
         "the creator proposes the result · dispute window 1 week · a dispute holds it at most "
         "2 days · conflict-of-interest rule on"),
        ("creator", 2, 1_530, True, "the creator proposes the result · dispute window 1 day "
         "1 hour 30 minutes · a dispute holds it at most 2 days · conflict-of-interest rule on"),
    ],
)  # fmt: skip
def test_settings_embed_says_how_results_are_decided(mode, votes, window, conflict, words):
    gs = SimpleNamespace(
        **{**django_settings.PM_GUILD_DEFAULTS, "slippage_bps": 200},
        announce_channel_id=None,
        moderator_channel_id=None,
        creator_role_ids=[],
        resolver_role_ids=[],
    )
    gs.resolution_mode, gs.min_resolution_votes = mode, votes
    gs.dispute_window_minutes, gs.conflict_of_interest = window, conflict
    embed = render.settings_embed(gs)
    (field,) = [f for f in embed.fields if f.name == "Resolution"]
    assert field.value == words


@pytest.mark.parametrize(
    ("text_in", "limit"),
    [("𝔘" * 300, 256), ("a\\" * 200, 101), ("é" * 5000, 4096), ("x", 1)],
)
def test_fit_counts_like_discord_and_never_leaves_a_dangling_escape(text_in, limit):
    out = limits.fit(text_in, limit)
    assert limits.size(out) <= limit
    if out != text_in:
        assert out.endswith("…")
        body = out[:-1]
        assert (len(body) - len(body.rstrip("\\"))) % 2 == 0


@SETTINGS
@given(
    st.lists(st.tuples(text, text), min_size=0, max_size=40),
    st.one_of(st.none(), text),
    st.one_of(st.none(), text),
)
def test_embed_fit_repairs_any_embed(fields, title, description):
    embed = discord.Embed(title=(title or "") * 3, description=(description or "") * 10)
    for name, value in fields:
        embed.add_field(name=name * 2, value=value * 3)
    assert_fits(limits.embed_fit(embed))
