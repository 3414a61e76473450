"""Seasons (docs/domain.md §10): the calendar and the setting's validation, the close the market
clock drives (exactly once, archived, the optional reset through the ledger), and a season
rolling over while trades and settlements run concurrently: every trade counted in exactly one
season, and the archived table equal to the same table recomputed once everything committed."""

from __future__ import annotations

import datetime as dt
import random
import threading

import pytest
from django.db import connections

from betting import seasons
from betting.models import Trade
from markets import services
from markets.models import Market
from points import seasons as ledger_seasons
from points.errors import InvalidInput, NotAllowed
from points.models import Account, AuditEvent, Season, Transfer
from points.rules import Actor
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.selector_helpers import DAVE, bet, close, create, set_guild

OWNER = Actor.member(MOD, manage_guild=True)
NOW = dt.datetime(2027, 1, 15, 12, 0, tzinfo=dt.UTC)
_keys = iter(range(10**9))


def configure(length: str, **kw):
    return ledger_seasons.season_configure(
        guild_id=GUILD, actor=OWNER, idempotency_key=f"season:{next(_keys)}", length=length, **kw
    )


def resolve(market: Market, outcome: int) -> None:
    close(market)
    services.market_resolve(
        market_id=market.pk,
        outcome=outcome,
        reason="r",
        idempotency_key=f"res:{market.pk}",
        actor=OWNER,
    )


def test_month_and_quarter_ends():
    assert ledger_seasons.month_end(NOW, 1) == dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    assert ledger_seasons.month_end(NOW, 3) == dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
    december = dt.datetime(2027, 12, 31, 23, 59, tzinfo=dt.UTC)
    assert ledger_seasons.month_end(december, 1) == dt.datetime(2028, 1, 1, tzinfo=dt.UTC)
    assert ledger_seasons.month_end(december, 3) == dt.datetime(2028, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Custom seasons need their end dates: 1 to 24 dates like 2027-03-31"),
        ("31/03/2027", "“31/03/2027” is not a date: write it as 2027-03-31"),
        ("2027-03-31, 2027-02-28", "Each season must end at least a day after the previous end"),
        ("2027-01-14", "Each season must end at least a day after the previous end and after"),
        (", ".join(["2028-01-01"] * 25), "1 to 24 dates"),
    ],
)
def test_custom_dates_are_refused_with_what_is_allowed(raw, message):
    with pytest.raises(InvalidInput) as caught:
        ledger_seasons.parse_ends(raw, NOW)
    assert message in str(caught.value)


@pytest.mark.django_db
def test_settings_open_a_season_and_are_for_manage_server_only():
    with pytest.raises(NotAllowed):
        ledger_seasons.season_configure(
            guild_id=GUILD, actor=Actor.member(BOB), idempotency_key="k", length="month"
        )
    with pytest.raises(InvalidInput, match="Season length is “off”, “month”"):
        configure("weekly")
    with pytest.raises(InvalidInput, match="End dates are only for custom seasons"):
        configure("month", ends="2030-01-01")
    configure("custom", ends="2030-01-31, 2030-02-28", now=NOW)
    (season,) = Season.objects.filter(guild_id=GUILD)
    assert (season.number, season.status, season.starts_at) == (1, "open", NOW)
    assert season.ends_at == dt.datetime(2030, 2, 1, tzinfo=dt.UTC)
    assert AuditEvent.objects.filter(action="season_settings", guild_id=GUILD).count() == 1
    # Off: the running season ends now; the next tick closes it and opens none.
    configure("off", now=NOW + dt.timedelta(hours=1))
    assert seasons.seasons_tick(now=NOW + dt.timedelta(hours=1)) == [season.pk]
    assert list(Season.objects.filter(guild_id=GUILD).values_list("number", "status")) == [
        (1, "closed")
    ]


@pytest.mark.django_db
def test_a_season_closes_once_archives_its_tables_and_may_reset_balances():
    set_guild(fee_bps=0, starting_balance=1000)
    configure("month", reset=True)
    first = create("first")
    bet(first, BOB, 0, 200)
    bet(first, CAROL, 1, 100)
    resolve(first, 0)  # in season 1
    later = create("later")
    bet(later, BOB, 1, 50)  # settles in season 2

    season = Season.objects.get(guild_id=GUILD, number=1)
    end = season.ends_at + dt.timedelta(seconds=1)
    assert seasons.seasons_tick(now=end) == [season.pk]
    assert seasons.seasons_tick(now=end) == []  # exactly once
    season.refresh_from_db()
    table = seasons.tables_from_archive(season)
    assert table.profit[0][0] == BOB and table.profit[-1] == (CAROL, -100)
    assert dict(table.balance)[CAROL] == -100
    # The reset: every wallet back to 1,000 through the ledger, audited, once.
    balances = dict(
        Account.objects.filter(guild_id=GUILD, kind="wallet").values_list("owner_id", "balance")
    )
    assert set(balances.values()) == {1000}
    assert Transfer.objects.filter(guild_id=GUILD, code="season_reset").count() == 2
    assert AuditEvent.objects.filter(action="season_reset", guild_id=GUILD).count() == 1
    second = Season.objects.get(guild_id=GUILD, number=2)
    assert second.status == "open" and second.starts_at == end
    resolve(later, 1)
    assert Market.objects.get(pk=later.pk).season == 2
    assert Market.objects.get(pk=first.pk).season == 1
    live = seasons.season_tables_for(guild_id=GUILD, number=None)
    assert live.number == 2 and dict(live.profit)[BOB] > 0


def _worker(market_ids: list[int], seed: int, errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    try:
        for market_id in market_ids:
            market = Market.objects.get(pk=market_id)
            for _ in range(rng.randint(2, 5)):
                bet(market, rng.choice([ALICE, BOB, CAROL, DAVE]), rng.randrange(2), 10)
            if rng.random() < 0.8:
                resolve(market, rng.randrange(2))
    except BaseException as exc:
        errors.append(exc)
    finally:
        connections.close_all()


def _closer(season_id: int, at: dt.datetime, start: threading.Event, out: list[bool]) -> None:
    try:
        start.wait(timeout=60)
        out.append(seasons.season_close(season_id, at))
    finally:
        connections.close_all()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_season_rolling_over_during_trades_and_settlements_counts_every_trade_once():
    set_guild(fee_bps=100, starting_balance=100_000)
    configure("month")
    markets = [create(f"race{i}").pk for i in range(24)]
    season = Season.objects.get(guild_id=GUILD, number=1)
    start, closed, errors = threading.Event(), [], []
    workers = [threading.Thread(target=_worker, args=(markets[w::3], w, errors)) for w in range(3)]
    closer = threading.Thread(
        target=_closer, args=(season.pk, season.ends_at + dt.timedelta(seconds=1), start, closed)
    )
    for t in (*workers, closer):
        t.start()
    # Roll over once the traders are under way.
    while Trade.objects.filter(guild_id=GUILD).count() < 10 and any(w.is_alive() for w in workers):
        threading.Event().wait(0.02)
    start.set()
    for t in (*workers, closer):
        t.join(timeout=300)
    assert not errors, errors
    assert closed == [True]

    settled = Market.objects.filter(guild_id=GUILD, status__in=["resolved", "cancelled"])
    by_season = dict((n, settled.filter(season=n).count()) for n in (1, 2))
    assert by_season[1] + by_season[2] == settled.count()
    assert not settled.filter(season__isnull=True).exists()
    # Every trade of a settled market counts in exactly one season.
    counted = sum(
        Trade.objects.filter(market__season=n, market__guild_id=GUILD).count() for n in (1, 2)
    )
    assert counted == Trade.objects.filter(market__in=settled).count()
    # What the close archived is what season 1 is, now that everything has committed: no
    # settlement slipped into it after its table was drawn.
    season.refresh_from_db()
    archived = seasons.tables_from_archive(season)
    recomputed = seasons.season_tables(season, season.balances_end)
    assert archived.profit == recomputed.profit
    assert archived.balance == recomputed.balance
    # Balance changes across the seasons add up to each member's whole change.
    second = Season.objects.get(guild_id=GUILD, number=2)
    now_balances = ledger_seasons.wallet_balances(GUILD)
    one = seasons.balance_changes(GUILD, season.balances_start, season.balances_end)
    two = seasons.balance_changes(GUILD, second.balances_start, now_balances)
    whole = seasons.balance_changes(GUILD, season.balances_start, now_balances)
    assert {u: one.get(u, 0) + two.get(u, 0) for u in whole} == whole
