"""Market selectors against what the services actually do: a settlement preview equals what
resolve/cancel pay; and every selector (the trading ones of `betting.selectors` too) runs a
constant number of queries for 1 row or many (STYLE §15). Quotes, portfolio, price history and
the leaderboard are tested in tests/betting/test_selectors.py."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from betting import selectors as betting_selectors
from betting.models import Position
from markets import selectors, services
from markets.amm import SHARE_SCALE
from markets.errors import MarketNotFound
from markets.models import Market
from points import selectors as points_selectors
from points.models import Account, Transfer
from points.rules import Actor
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.selector_helpers import (
    DAVE,
    OTHER_GUILD,
    bet,
    close,
    create,
    paid_to_members,
    sell,
    set_guild,
)

pytestmark = pytest.mark.django_db


def treasury_net(market: Market) -> int:
    """Points the treasury got back from settling `market` minus what it had to add."""
    back = Transfer.objects.filter(
        market_id=market.pk, code=Transfer.Code.LIQUIDITY_RETURN
    ).aggregate(s=Sum("amount"))["s"]
    added = Transfer.objects.filter(
        market_id=market.pk,
        code__in=[Transfer.Code.PAYOUT, Transfer.Code.REFUND],
        source__kind=Account.Kind.TREASURY,
    ).aggregate(s=Sum("amount"))["s"]
    return (back or 0) - (added or 0)


# --- Listing -----------------------------------------------------------------------------------


def test_market_list_filters_searches_and_pages():
    sports = create("a", question="Will the Lions win the cup?", category="Sports")
    weather = create("b", question="Will it snow in May?", category="weather")
    closed = create("c", question="Will the lions tour?", category="sports")
    close(closed)
    cancelled = create("d", question="Can't say", mechanism="parimutuel")
    services.market_cancel(
        market_id=cancelled.pk,
        reason="x",
        idempotency_key="x",
        actor=Actor.member(MOD, manage_guild=True),
    )
    create("e", guild_id=OTHER_GUILD, question="Will the lions win abroad?")

    def ids(**kw):
        return [m.id for m in selectors.market_list(guild_id=GUILD, **kw)]

    assert ids() == [cancelled.pk, closed.pk, weather.pk, sports.pk]
    assert ids(status="open") == [weather.pk, sports.pk]
    assert ids(status=["closed", "cancelled"]) == [cancelled.pk, closed.pk]
    assert ids(category="SPORTS") == [closed.pk, sports.pk]
    assert ids(search="lions") == [closed.pk, sports.pk]
    assert ids(search=f"#{weather.pk}") == [weather.pk]
    assert ids(search="can't") == [cancelled.pk]
    assert ids(status="open", category="sports", search="cup") == [sports.pk]
    assert ids(limit=2) == [cancelled.pk, closed.pk]
    assert ids(limit=2, offset=2) == [weather.pk, sports.pk]
    assert len(selectors.market_list(guild_id=None)) == 5
    assert selectors.market_count(guild_id=GUILD, status="open") == 2
    assert selectors.market_count(guild_id=GUILD, category="sports") == 2
    found = selectors.categories(guild_id=GUILD)  # distinct as stored; order is the collation's
    assert sorted(found) == ["Sports", "sports", "weather"]
    summary = selectors.market_list(guild_id=GUILD, search="snow")[0]
    assert (summary.question, summary.category, summary.status) == (
        "Will it snow in May?",
        "weather",
        "open",
    )
    assert [o.label for o in summary.outcomes] == ["Yes", "No"]


def test_market_get_keeps_guilds_apart():
    market = create("m", guild_id=OTHER_GUILD)
    assert selectors.market_get(market_id=market.pk, guild_id=OTHER_GUILD).id == market.pk
    with pytest.raises(MarketNotFound):
        selectors.market_get(market_id=market.pk, guild_id=GUILD)


# --- Settlement preview ------------------------------------------------------------------------


def assert_preview_matches_settlement(market: Market, preview) -> None:
    paid = paid_to_members(market)
    assert dict(preview.payments) == paid
    assert [amount for _, amount in preview.payments] == sorted(paid.values(), reverse=True)
    assert preview.total == sum(paid.values())
    assert preview.treasury_delta == treasury_net(market)
    assert Account.objects.get(kind=Account.Kind.ESCROW, market=market).balance == 0


def test_settlement_preview_equals_what_an_amm_resolution_pays():
    market = create("m", outcomes=("A", "B", "C"))
    for user, outcome, amount in [(BOB, 0, 200), (CAROL, 0, 90), (DAVE, 1, 300), (BOB, 2, 10)]:
        bet(market, user, outcome, amount)
    sell(market, CAROL, 0, 40 * SHARE_SCALE)
    close(market)
    previews = {o: selectors.settlement_preview(market_id=market.pk, outcome=o) for o in range(3)}
    cancel_preview = selectors.settlement_preview(market_id=market.pk)
    assert cancel_preview.kind == "cancel" and previews[0].kind == "resolve"
    assert len({p.total for p in previews.values()}) == 3  # each outcome pays differently
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=0,
        idempotency_key="1",
        actor=Actor.member(MOD, manage_guild=True),
    )
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=0,
        idempotency_key="2",
        actor=Actor.member(MOD + 1, manage_guild=True),
    )
    assert_preview_matches_settlement(market, previews[0])


def test_settlement_preview_equals_what_a_pool_resolution_pays_with_leftovers():
    market = create("p", mechanism="parimutuel", outcomes=("Red", "Blue", "Green"))
    for user, outcome, amount in [(BOB, 0, 100), (CAROL, 0, 100), (DAVE, 0, 100), (ALICE, 1, 101)]:
        bet(market, user, outcome, amount)
    bet(market, BOB, 0, 1)
    close(market)
    preview = selectors.settlement_preview(market_id=market.pk, outcome=0)
    assert preview.total == preview.escrow == 402 and not preview.refunded_all
    # W = 301: floors 134, 133, 133 (remainders 268, 167, 167); the 2 leftover points go to
    # BOB (largest remainder), then CAROL (tied with DAVE, but bet first).
    assert preview.payments == [(BOB, 135), (CAROL, 134), (DAVE, 133)]
    services.market_resolve(
        market_id=market.pk,
        outcome=0,
        reason="r",
        idempotency_key="res",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert_preview_matches_settlement(market, preview)


def test_settlement_preview_equals_the_refund_when_nobody_backed_the_winner():
    market = create("p", mechanism="parimutuel", outcomes=("Red", "Blue", "Green"))
    bet(market, BOB, 0, 70)
    bet(market, CAROL, 1, 30)
    close(market)
    preview = selectors.settlement_preview(market_id=market.pk, outcome=2)
    assert preview.refunded_all and preview.payments == [(BOB, 70), (CAROL, 30)]
    services.market_resolve(
        market_id=market.pk,
        outcome=2,
        reason="r",
        idempotency_key="res",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert_preview_matches_settlement(market, preview)


def test_settlement_preview_equals_what_a_cancel_refunds_including_a_shortfall():
    set_guild(fee_bps=1000, default_liquidity=1)
    market = create("m")
    bet(market, BOB, 0, 100)  # fee 10: 90 reaches escrow, but BOB is owed 100 back
    bet(market, CAROL, 1, 50)
    sale = sell(market, CAROL, 1, 20 * SHARE_SCALE)
    preview = selectors.settlement_preview(market_id=market.pk)
    assert dict(preview.payments) == {BOB: 100, CAROL: 50 - sale.amount}
    assert preview.treasury_delta < 0  # the treasury must cover the fees it kept
    services.market_cancel(
        market_id=market.pk,
        reason="r",
        idempotency_key="x",
        actor=Actor.member(MOD, manage_guild=True),
    )
    assert_preview_matches_settlement(market, preview)


def test_settlement_preview_refuses_unknown_market_and_outcome():
    market = create("m")
    with pytest.raises(MarketNotFound):
        selectors.settlement_preview(market_id=market.pk + 100)
    with pytest.raises(Exception, match="has no outcome 3"):
        selectors.settlement_preview(market_id=market.pk, outcome=2)


# --- Events and votes --------------------------------------------------------------------------


def test_market_events_after_and_votes_get():
    market = create("m")
    other = create("o", guild_id=OTHER_GUILD)
    bet(market, BOB, 0, 10)
    close(market)
    services.resolution_vote_cast(
        market_id=market.pk,
        outcome=1,
        idempotency_key="v",
        actor=Actor.member(MOD, manage_guild=True),
    )
    events = selectors.market_events_after(after_id=0, guild_ids=[GUILD])
    assert [e.type for e in events] == ["market_created", "trade", "market_closed", "vote_cast"]
    assert selectors.market_events_after(after_id=events[1].id, market_id=market.pk) == events[2:]
    assert [e.market_id for e in selectors.market_events_after(after_id=0, limit=1)] == [market.pk]
    assert {e.market_id for e in selectors.market_events_after(after_id=0)} == {
        market.pk,
        other.pk,
    }
    assert selectors.votes_get(market_id=market.pk) == [(MOD, 1, "No")]


# --- Query counts: constant for 1 row or many ---------------------------------------------------


def populate(markets: int, traders: int) -> dict[str, object]:
    """`markets` amm and pool markets in one guild, each traded by `traders` members, one closed
    and voted on. Returns handles for the selectors."""
    set_guild(min_resolution_votes=100)  # votes stay open: many vote rows, no settlement
    first_amm = first_pool = None
    users = [BOB + 10 * k for k in range(traders)]
    for m in range(markets):
        amm_market = create(f"amm{m}:{traders}", outcomes=("A", "B", "C"), category="cat")
        pool = create(f"pool{m}:{traders}", mechanism="parimutuel", category="cat")
        for k, user in enumerate(users):
            bet(amm_market, user, k % 3, 20 + k)
            bet(pool, user, k % 2, 10 + k)
        first_amm, first_pool = first_amm or amm_market, first_pool or pool
    close(first_pool)
    for k in range(traders):
        services.resolution_vote_cast(
            market_id=first_pool.pk,
            outcome=k % 2,
            idempotency_key=f"vote:{traders}:{k}",
            actor=Actor.member(MOD + 100 + k, manage_guild=True),
        )
    return {"amm": first_amm, "pool": first_pool, "user": users[0], "users": users}


SELECTOR_QUERIES = {
    "market_get": 2,
    "market_list": 2,
    "quote_buy": 2,
    "quote_sell": 3,
    "portfolio_get": 3,
    "price_history": 3,
    "leaderboard_profit": 3,
    "settlement_preview_resolve": 4,
    "settlement_preview_cancel": 4,
    "market_events_after": 1,
    "votes_get": 1,
    "market_count": 1,
    "categories": 1,
    "volume_by_market": 1,
    "balances_get": 1,
    "holdings_get": 1,
}


def call_selector(name: str, h: dict[str, object]) -> object:
    amm_market, pool, user, users = h["amm"], h["pool"], h["user"], h["users"]
    calls = {
        "market_get": lambda: selectors.market_get(market_id=amm_market.pk),
        "market_list": lambda: selectors.market_list(guild_id=GUILD, limit=100),
        "quote_buy": lambda: betting_selectors.quote_buy(
            market_id=amm_market.pk, outcome=1, amount=50
        ),
        "quote_sell": lambda: betting_selectors.quote_sell(
            market_id=amm_market.pk, user_id=user, outcome=0
        ),
        "portfolio_get": lambda: betting_selectors.portfolio_get(guild_id=GUILD, user_id=user),
        "price_history": lambda: betting_selectors.price_history(market_id=amm_market.pk),
        "leaderboard_profit": lambda: betting_selectors.leaderboard_profit(
            guild_id=GUILD, limit=100
        ),
        "settlement_preview_resolve": lambda: selectors.settlement_preview(
            market_id=pool.pk, outcome=0
        ),
        "settlement_preview_cancel": lambda: selectors.settlement_preview(market_id=amm_market.pk),
        "market_events_after": lambda: selectors.market_events_after(after_id=0),
        "votes_get": lambda: selectors.votes_get(market_id=pool.pk),
        "market_count": lambda: selectors.market_count(guild_id=GUILD),
        "categories": lambda: selectors.categories(guild_id=GUILD),
        "volume_by_market": lambda: betting_selectors.volume_by_market([amm_market.pk, pool.pk]),
        # A wave of quotes reads its members' balances and holdings together (issue 21).
        "balances_get": lambda: points_selectors.balances_get(guild_id=GUILD, user_ids=users),
        "holdings_get": lambda: betting_selectors.holdings_get(
            market_id=amm_market.pk, user_ids=users
        ),
    }
    return calls[name]()


def row_count(result: object) -> int:
    for attr in ("positions", "points", "payments", "outcomes"):
        if hasattr(result, attr):
            return len(getattr(result, attr))
    return len(result) if hasattr(result, "__len__") else 1


@pytest.mark.parametrize("name", list(SELECTOR_QUERIES))
def test_selector_query_count_is_constant_for_one_or_many_rows(name, django_assert_num_queries):
    expected = SELECTOR_QUERIES[name]
    small = populate(markets=1, traders=1)
    with django_assert_num_queries(expected):
        few = call_selector(name, small)
    large = populate(markets=4, traders=6)
    with django_assert_num_queries(expected):
        many = call_selector(name, large)
    constant_size = ("market_count", "quote_buy", "quote_sell", "market_get", "categories")
    if name not in (*constant_size, "volume_by_market"):
        assert row_count(many) > row_count(few), "the large case must really have more rows"


def test_balances_and_holdings_read_together_are_each_members_own():
    h = populate(markets=1, traders=3)
    users, stranger = h["users"], BOB + 999  # the stranger has no wallet and no shares
    balances = points_selectors.balances_get(guild_id=GUILD, user_ids=[*users, stranger])
    assert balances == {u: points_selectors.balance_get(guild_id=GUILD, user_id=u) for u in users}
    held = betting_selectors.holdings_get(market_id=h["amm"].pk, user_ids=[*users, stranger])
    rows = Position.objects.filter(market=h["amm"], shares__gt=0).select_related("outcome")
    assert held and held == {(p.user_id, p.outcome.position): p.shares for p in rows}


@pytest.mark.parametrize("search", ["²", "99999999999999999999", "9" * 5000, "#", "   "])
def test_market_list_search_with_odd_numbers_finds_nothing_instead_of_failing(search):
    create("m", question="Will it rain?")
    found = selectors.market_list(guild_id=GUILD, search=search)
    assert [m.question for m in found] in ([], ["Will it rain?"])
    if search.strip().lstrip("#"):
        assert found == []
