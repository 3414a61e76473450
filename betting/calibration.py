"""Calibration: how well a member's buys foretold what happened (docs/domain.md §9).

Every buy in a resolved market-maker market is a forecast: the member paid `p` points a share for
an outcome, so they said it was worth at least `p`. Its Brier term is `(p − o)²`, `o` being 1 if
that outcome won and 0 if not; a member's score is the mean of their terms weighted by the points
each buy spent. Lower is better: 0 is perfect foresight, 0.25 is what always paying 50 % scores.

The pure part (`implied_probability`, `brier`, `buckets`) takes plain numbers; the selectors read
the trade log in a constant number of queries. Scores are floats for display only (DOMAIN §1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from django.db.models import Case, Count, F, FloatField, QuerySet, Sum, Value, When
from django.db.models.functions import Cast

from core.replicas import lag_tolerant
from markets.amm import SHARE_SCALE
from markets.models import Market

from .models import Trade

MIN_MARKETS = 5
"""Resolved market-maker markets a member must have bought in to be ranked by calibration."""
BUCKETS = 10
"""The calibration chart's predicted-probability buckets: 0–10 %, 10–20 %, …, 90–100 %."""


@dataclass(frozen=True)
class Forecast:
    """One buy as a forecast: the probability it paid, whether its outcome won, its weight."""

    probability: Fraction
    won: bool
    weight: int


def implied_probability(amount: int, fee: int, shares: int) -> Fraction:
    """The probability a buy paid for: points into the market per whole share bought,
    `(amount − fee) / (shares / SHARE_SCALE)`. A share pays one point if its outcome wins, so
    this is the price the member accepted; it lies between the prices before and after the buy,
    and never above 1 (a buy mints a complete set per net point, §4.3)."""
    if shares <= 0:
        raise ValueError("a buy receives shares")
    return min(Fraction(1), Fraction((amount - fee) * SHARE_SCALE, shares))


def brier(forecasts: Iterable[Forecast]) -> float | None:
    """The points-weighted mean of `(p − o)²`; None without forecasts."""
    total = Fraction(0)
    weight = 0
    for f in forecasts:
        total += f.weight * (f.probability - int(f.won)) ** 2
        weight += f.weight
    return float(total / weight) if weight else None


@dataclass(frozen=True)
class Bucket:
    low: float
    high: float
    forecasts: int
    weight: int
    predicted: float | None
    """The weighted mean probability paid in this bucket."""
    observed: float | None
    """The weighted share of this bucket's points that went on outcomes that won."""


def buckets(forecasts: Iterable[Forecast], count: int = BUCKETS) -> list[Bucket]:
    """The calibration chart's data: forecasts grouped by probability paid (the last bucket
    includes 100 %), each bucket's mean prediction against how often it came true."""
    counts = [0] * count
    weighted_p = [Fraction(0)] * count
    weighted_won = [0] * count
    weights = [0] * count
    for f in forecasts:
        index = min(count - 1, int(f.probability * count))
        counts[index] += 1
        weighted_p[index] += f.weight * f.probability
        weighted_won[index] += f.weight * int(f.won)
        weights[index] += f.weight
    return [
        Bucket(
            low=i / count,
            high=(i + 1) / count,
            forecasts=counts[i],
            weight=weights[i],
            predicted=float(weighted_p[i] / weights[i]) if weights[i] else None,
            observed=weighted_won[i] / weights[i] if weights[i] else None,
        )
        for i in range(count)
    ]


# --- Reads ------------------------------------------------------------------------------------


def _buys(guild_id: int, season: int | None = None) -> QuerySet[Trade]:
    """Buys in the guild's resolved market-maker markets (settled in `season` when given:
    docs/domain.md §10)."""
    qs = Trade.objects.filter(
        guild_id=guild_id,
        kind=Trade.Kind.BUY,
        shares__gt=0,
        market__status=Market.Status.RESOLVED,
        market__mechanism=Market.Mechanism.AMM,
    )
    if season is not None:
        qs = qs.filter(market__season=season)
    return qs


def forecasts_of(
    *,
    guild_id: int,
    user_id: int,
    season: int | None = None,
) -> list[Forecast]:
    """A member's buys in resolved market-maker markets as forecasts (1 query)."""
    rows = (
        _buys(guild_id, season)
        .filter(user_id=user_id)
        .values_list("amount", "fee", "shares", "outcome_id", "market__winning_outcome_id")
        .order_by("id")
    )
    return [
        Forecast(implied_probability(a, fee, s), outcome == winner, a)
        for a, fee, s, outcome, winner in rows
    ]


@dataclass(frozen=True)
class CalibrationRow:
    rank: int
    user_id: int
    brier: float
    markets: int
    """Resolved market-maker markets the member bought in."""
    buys: int


@lag_tolerant  # /portfolio's and /calibration's line: a replica may serve it (docs/deploy.md §8)
def calibration_scores(
    *,
    guild_id: int,
    season: int | None = None,
) -> dict[int, CalibrationRow]:
    """Every member's score in one aggregate query (rank 0: not ranked). The database adds the
    weighted terms in floating point; the same numbers as `brier` to display precision."""
    paid = Cast((F("amount") - F("fee")) * SHARE_SCALE, FloatField()) / Cast(
        F("shares"), FloatField()
    )
    won = Case(
        When(outcome_id=F("market__winning_outcome_id"), then=Value(1.0)),
        default=Value(0.0),
        output_field=FloatField(),
    )
    rows = (
        _buys(guild_id, season)
        .annotate(term=Cast(F("amount"), FloatField()) * (paid - won) * (paid - won))
        .values("user_id")
        .annotate(
            total=Sum("term"),
            weight=Sum("amount"),
            markets=Count("market_id", distinct=True),
            buys=Count("id"),
        )
        .order_by()
    )
    return {
        r["user_id"]: CalibrationRow(
            0, r["user_id"], r["total"] / r["weight"], r["markets"], r["buys"]
        )
        for r in rows
        if r["weight"]
    }


def leaderboard_calibration(
    *,
    guild_id: int,
    limit: int = 10,
    season: int | None = None,
    min_markets: int = MIN_MARKETS,
) -> list[CalibrationRow]:
    """Members with buys in at least `min_markets` resolved market-maker markets, best (lowest)
    Brier score first; ties by more markets, then by who joined first (user id)."""
    scores = [
        s
        for s in calibration_scores(guild_id=guild_id, season=season).values()
        if s.markets >= min_markets
    ]
    scores.sort(key=lambda s: (round(s.brier, 9), -s.markets, s.user_id))
    return [
        CalibrationRow(rank, s.user_id, s.brier, s.markets, s.buys)
        for rank, s in enumerate(scores[: max(1, min(limit, 100))], 1)
    ]


def calibration_of(*, guild_id: int, user_id: int) -> CalibrationRow | None:
    """One member's score and rank among the ranked members (1 query), None without buys in a
    resolved market-maker market; rank 0 while they have fewer than `MIN_MARKETS` markets."""
    scores = calibration_scores(guild_id=guild_id)
    mine = scores.get(user_id)
    if mine is None:
        return None
    if mine.markets < MIN_MARKETS:
        return mine
    key = (round(mine.brier, 9), -mine.markets, mine.user_id)
    rank = 1 + sum(
        1
        for s in scores.values()
        if s.markets >= MIN_MARKETS and (round(s.brier, 9), -s.markets, s.user_id) < key
    )
    return CalibrationRow(rank, user_id, mine.brier, mine.markets, mine.buys)


__all__ = [
    "BUCKETS",
    "MIN_MARKETS",
    "Bucket",
    "CalibrationRow",
    "Forecast",
    "brier",
    "buckets",
    "calibration_of",
    "calibration_scores",
    "forecasts_of",
    "implied_probability",
    "leaderboard_calibration",
]
