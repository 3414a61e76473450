"""Calibration (docs/domain.md §9): the worked example's Brier scores through the real services,
the leaderboard's five-market minimum, and on simulated markets the property that makes it a
score worth showing: a member whose prices are the true frequencies beats one whose are not."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from betting import calibration
from betting.calibration import Forecast, brier, buckets, implied_probability
from markets import services
from points.rules import Actor
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.selector_helpers import DAVE, bet, close, create, set_guild


def resolve(market, outcome: int) -> None:
    close(market)
    services.market_resolve(
        market_id=market.pk,
        outcome=outcome,
        reason="the result",
        idempotency_key=f"res:{market.pk}",
        actor=Actor.member(MOD, manage_guild=True),
    )


@pytest.mark.django_db
def test_the_worked_example_of_section_9():
    set_guild(fee_bps=0, starting_balance=1000)
    market = create("worked", liquidity=100, actor=Actor.member(ALICE, manage_guild=True))
    trades = [bet(market, BOB, 0, 100), bet(market, CAROL, 1, 50), bet(market, BOB, 1, 100)]
    assert [t.shares for t in trades] == [150_000_000] * 3
    assert [implied_probability(t.amount, t.fee, t.shares) for t in trades] == [
        Fraction(2, 3),
        Fraction(1, 3),
        Fraction(2, 3),
    ]
    resolve(market, 0)

    bob = calibration.forecasts_of(guild_id=GUILD, user_id=BOB)
    carol = calibration.forecasts_of(guild_id=GUILD, user_id=CAROL)
    assert brier(bob) == pytest.approx(5 / 18)
    assert brier(carol) == pytest.approx(1 / 9)
    scores = calibration.calibration_scores(guild_id=GUILD)
    assert scores[BOB].brier == pytest.approx(5 / 18)
    assert scores[CAROL].brier == pytest.approx(1 / 9)
    assert (scores[BOB].markets, scores[BOB].buys) == (1, 2)
    # One market is not five: nobody is ranked yet, and the member's own row says so (rank 0).
    assert calibration.leaderboard_calibration(guild_id=GUILD) == []
    assert calibration.calibration_of(guild_id=GUILD, user_id=CAROL).rank == 0


@pytest.mark.django_db
def test_ranked_after_five_resolved_markets_and_only_resolved_market_maker_buys_count():
    set_guild(fee_bps=100, starting_balance=10_000)
    for n in range(5):
        market = create(f"m{n}")
        bet(market, BOB, 0, 40)  # Bob always backs the winner
        bet(market, CAROL, 1, 40)  # Carol always the loser
        if n < 4:
            bet(market, DAVE, 0, 10)  # Dave misses the fifth market
        resolve(market, 0)
    open_market = create("open")
    bet(open_market, BOB, 1, 500)  # unresolved: not a forecast yet
    cancelled = create("cancelled")
    bet(cancelled, CAROL, 0, 500)
    services.market_cancel(
        market_id=cancelled.pk,
        reason="void",
        idempotency_key="cancel",
        actor=Actor.member(MOD, manage_guild=True),
    )
    pool = create("pool", mechanism="parimutuel")
    bet(pool, CAROL, 0, 100)
    resolve(pool, 0)

    rows = calibration.leaderboard_calibration(guild_id=GUILD)
    assert [(r.rank, r.user_id, r.markets) for r in rows] == [(1, BOB, 5), (2, CAROL, 5)]
    assert rows[0].brier < rows[1].brier
    assert calibration.calibration_of(guild_id=GUILD, user_id=CAROL).rank == 2
    assert calibration.calibration_of(guild_id=GUILD, user_id=DAVE).markets == 4
    assert calibration.calibration_of(guild_id=GUILD, user_id=ALICE) is None
    # The database's float sum is the exact score to display precision.
    exact = brier(calibration.forecasts_of(guild_id=GUILD, user_id=CAROL))
    assert rows[1].brier == pytest.approx(exact)
    assert len(calibration.forecasts_of(guild_id=GUILD, user_id=CAROL)) == 5


def test_buckets_group_by_probability_paid_and_weigh_by_points():
    forecasts = [
        Forecast(Fraction(1, 20), False, 10),
        Forecast(Fraction(7, 10), True, 30),
        Forecast(Fraction(3, 4), False, 10),
        Forecast(Fraction(1), True, 5),
    ]
    rows = buckets(forecasts)
    assert len(rows) == 10
    assert (rows[0].forecasts, rows[0].observed) == (1, 0.0)
    assert rows[7].forecasts == 2
    assert rows[7].predicted == pytest.approx((30 * 0.7 + 10 * 0.75) / 40)
    assert rows[7].observed == pytest.approx(0.75)
    assert (rows[9].forecasts, rows[9].observed) == (1, 1.0)  # 100 % falls in the last bucket
    assert rows[4].predicted is None


def simulated(seed: int, distort, markets: int = 3000) -> tuple[float, float]:
    """The Brier scores of two members over the same simulated markets and outcomes: one pays
    each outcome's true probability, the other `distort(true probability)`."""
    rng = random.Random(seed)
    honest, other = [], []
    for _ in range(markets):
        q = Fraction(rng.randint(5, 95), 100)
        won = rng.random() < q
        weight = rng.randint(1, 500)
        honest.append(Forecast(q, won, weight))
        other.append(Forecast(min(Fraction(1), max(Fraction(1, 100), distort(q))), won, weight))
    return brier(honest), brier(other)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32),
    bias=st.sampled_from([-1, 1]),
    size=st.integers(10, 40),
    confidence=st.integers(0, 3),
)
def test_a_member_who_pays_the_true_frequency_scores_better(seed, bias, size, confidence):
    """Biased (always `size` % too high or too low) or over-confident (prices pushed away from
    50 %), the other member scores worse on the same markets: Brier is a proper score."""

    def distort(q: Fraction) -> Fraction:
        shifted = q + bias * Fraction(size, 100)
        return Fraction(1, 2) + (shifted - Fraction(1, 2)) * (1 + Fraction(confidence, 2))

    honest, other = simulated(seed, distort)
    assert honest < other
