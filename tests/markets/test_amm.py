"""Properties of the pure market maths (DOMAIN §4, §5): Hypothesis over 2..10 outcomes and
realistic sizes (liquidity and trades of 1..10^6 points), plus hand-computed exact examples so
two implementations of §4 agree to the micro-share. No database."""

from __future__ import annotations

from fractions import Fraction
from math import prod

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from markets import amm
from markets.amm import SHARE_SCALE, WinnerStake

N_OUTCOMES = st.integers(min_value=amm.MIN_OUTCOMES, max_value=amm.MAX_OUTCOMES)
LIQUIDITY = st.integers(min_value=1, max_value=10**6)
POINTS = st.integers(min_value=1, max_value=10**6)
FAST = settings(max_examples=150, deadline=None)


@st.composite
def pools_after_trades(draw: st.DrawFn, max_trades: int = 6) -> list[int]:
    """Pools of a market that started at 1/n and then saw a few buys, so prices differ."""
    n = draw(N_OUTCOMES)
    pools = amm.initial_pools(n, draw(LIQUIDITY))
    for _ in range(draw(st.integers(0, max_trades))):
        pools = amm.buy(pools, draw(st.integers(0, n - 1)), draw(POINTS)).pools
    return pools


@st.composite
def pools_and_outcome(draw: st.DrawFn) -> tuple[list[int], int]:
    pools = draw(pools_after_trades())
    return pools, draw(st.integers(0, len(pools) - 1))


# --- §4.2 prices -----------------------------------------------------------------------------


@FAST
@given(pools_after_trades())
def test_prices_are_in_open_unit_interval_and_sum_to_exactly_one(pools):
    prices = amm.prices(pools)
    assert all(isinstance(p, Fraction) and 0 < p < 1 for p in prices)
    assert sum(prices) == 1
    # price_i = (1/pool_i) / Σ 1/pool_j, computed here the direct way.
    inverse_total = sum(Fraction(1, p) for p in pools)
    assert prices == [Fraction(1, p) / inverse_total for p in pools]


@FAST
@given(N_OUTCOMES, LIQUIDITY)
def test_every_outcome_starts_at_one_over_n(n, liquidity):
    pools = amm.initial_pools(n, liquidity)
    assert pools == [liquidity * SHARE_SCALE] * n
    assert amm.prices(pools) == [Fraction(1, n)] * n


@FAST
@given(pools_after_trades())
def test_prices_ppm_round_the_exact_prices(pools):
    for ppm, exact in zip(amm.prices_ppm(pools), amm.prices(pools), strict=True):
        assert abs(Fraction(ppm) - exact * 1_000_000) <= Fraction(1, 2)


# --- §4.3 buy --------------------------------------------------------------------------------


@FAST
@given(pools_and_outcome(), POINTS)
def test_buy_never_decreases_the_pool_product_and_moves_the_price_up(pools_outcome, amount):
    pools, i = pools_outcome
    result = amm.buy(pools, i, amount)
    assert prod(result.pools) >= prod(pools)
    assert result.shares > 0 and all(p > 0 for p in result.pools)
    # Complete sets are minted into every pool; the buyer takes from outcome i only.
    x = amount * SHARE_SCALE
    assert result.pools[i] + result.shares == pools[i] + x
    assert all(result.pools[j] == pools[j] + x for j in range(len(pools)) if j != i)
    # One exact ceiling: one micro-share fewer in the pool would break the product.
    assert (result.pools[i] - 1) * prod(result.pools[:i] + result.pools[i + 1 :]) < prod(pools)
    assert amm.prices(result.pools)[i] > amm.prices(pools)[i]


@FAST
@given(pools_and_outcome(), POINTS, POINTS)
def test_buying_more_never_gives_fewer_shares(pools_outcome, amount, extra):
    pools, i = pools_outcome
    assert amm.buy(pools, i, amount + extra).shares >= amm.buy(pools, i, amount).shares


@FAST
@given(pools_and_outcome(), POINTS)
def test_a_buy_gives_at_least_one_share_per_point(pools_outcome, amount):
    """A price is below 1, so `amount` points always buy more than `amount` shares: the pool of
    the bought outcome never grows."""
    pools, i = pools_outcome
    assert amm.buy(pools, i, amount).shares >= amount * SHARE_SCALE


@pytest.mark.parametrize("net_amount", [0, -1])
def test_buy_refuses_a_non_positive_amount(net_amount):
    with pytest.raises(ValueError):
        amm.buy(amm.initial_pools(2, 100), 0, net_amount)


# --- §4.4 sell -------------------------------------------------------------------------------


@FAST
@given(pools_and_outcome(), POINTS)
def test_buy_then_sell_the_same_shares_never_returns_more_than_was_paid(pools_outcome, amount):
    pools, i = pools_outcome
    bought = amm.buy(pools, i, amount)
    sold = amm.sell(bought.pools, i, bought.shares)
    assert sold.points <= amount
    assert sold.shares == bought.shares  # exactly what was asked (§4.4)
    assert 0 <= sold.cost <= sold.shares


@FAST
@given(pools_and_outcome(), st.integers(0, 3 * 10**12), st.sampled_from([0, 1, 100, 10_000]))
def test_buy_then_sell_with_fees_nets_no_profit(pools_outcome, amount, fee_bps):
    pools, i = pools_outcome
    amount = amount % 10**6 + 1
    fee = amm.fee_for(amount, fee_bps)
    assume(amount - fee > 0)
    bought = amm.buy(pools, i, amount - fee)
    sold = amm.sell(bought.pools, i, bought.shares)
    assert sold.points - amm.fee_for(sold.points, fee_bps) <= amount


@FAST
@given(pools_and_outcome(), st.integers(1, 2 * 10**12))
def test_sell_returns_the_largest_whole_point_amount_whose_cost_fits(pools_outcome, shares):
    pools, i = pools_outcome
    result = amm.sell(pools, i, shares)
    assert result.shares == shares  # the position loses exactly what was asked (§4.4)
    assert result.cost == amm.sell_cost(pools, i, result.points) <= shares
    assert result.left_in_pool == shares - result.cost
    y = result.points * SHARE_SCALE
    assert result.pools[i] == pools[i] + shares - y
    assert all(result.pools[j] == pools[j] - y for j in range(len(pools)) if j != i)
    following = amm.sell_cost(pools, i, result.points + 1)
    assert following is None or following > shares


def _last_feasible(pools: list[int], i: int) -> int:
    """The most whole points the other pools can pay out for outcome i (`y < pool_j`)."""
    return (min(p for j, p in enumerate(pools) if j != i) - 1) // SHARE_SCALE


@FAST
@given(pools_and_outcome(), st.integers(0, 10**12))
def test_sell_never_decreases_the_pool_product_and_keeps_pools_positive(pools_outcome, seed):
    pools, i = pools_outcome
    assume(_last_feasible(pools, i) >= 1)  # a 1-point pool cannot pay out a whole point
    points = 1 + seed % _last_feasible(pools, i)
    cost = amm.sell_cost(pools, i, points)
    assert cost is not None
    result = amm.sell(pools, i, cost)
    assert result.points == points and result.shares == result.cost == cost
    assert prod(result.pools) >= prod(pools)
    assert all(p > 0 for p in result.pools)
    y = points * SHARE_SCALE
    assert result.pools[i] == pools[i] + cost - y
    assert all(result.pools[j] == pools[j] - y for j in range(len(pools)) if j != i)


@FAST
@given(pools_and_outcome(), st.integers(0, 10**12))
def test_sell_cost_is_strictly_increasing_in_points(pools_outcome, seed):
    pools, i = pools_outcome
    last = _last_feasible(pools, i)
    assume(last >= 2)
    points = 1 + seed % (last - 1)
    low, high = amm.sell_cost(pools, i, points), amm.sell_cost(pools, i, points + 1)
    assert low is not None and high is not None
    assert points * SHARE_SCALE <= low < high


@FAST
@given(pools_and_outcome())
def test_sell_cost_is_none_exactly_when_the_other_pools_cannot_pay(pools_outcome):
    pools, i = pools_outcome
    last_feasible = _last_feasible(pools, i)
    assert amm.sell_cost(pools, i, last_feasible + 1) is None
    assert amm.sell_cost(pools, i, last_feasible + 10**6) is None
    if last_feasible >= 1:
        assert amm.sell_cost(pools, i, last_feasible) is not None
    assert amm.sell_cost(pools, i, 0) == 0


# --- §4.5 collateral over any sequence of trades -----------------------------------------------

TRADE = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(0, 2),  # holder
    st.integers(0, 9),  # outcome (mod n)
    POINTS,  # buy amount
    st.floats(min_value=0.0, max_value=1.0),  # fraction of the holding to sell
)


@settings(max_examples=120, deadline=None)
@given(N_OUTCOMES, LIQUIDITY, st.lists(TRADE, max_size=25))
def test_collateral_identity_holds_after_any_sequence_of_trades(n, liquidity, trades):
    """`pool_i + Σ holders' shares_i = collateral · SHARE_SCALE` for every outcome (§4.5)."""
    pools = amm.initial_pools(n, liquidity)
    collateral = liquidity
    held = [[0] * n for _ in range(3)]
    for kind, holder, outcome, amount, fraction in trades:
        i = outcome % n
        product_before = prod(pools)
        if kind == "buy":
            result = amm.buy(pools, i, amount)
            held[holder][i] += result.shares
            collateral += amount
        else:
            offered = int(held[holder][i] * fraction)
            if offered == 0:
                continue
            result = amm.sell(pools, i, offered)
            assert result.shares == offered
            held[holder][i] -= result.shares
            collateral -= result.points
        pools = result.pools
        assert prod(pools) >= product_before
        assert collateral > 0 and all(p > 0 for p in pools)
        for j in range(n):
            assert pools[j] + sum(h[j] for h in held) == collateral * SHARE_SCALE


# --- Exact examples (computed by hand with Fractions; any correct §4 agrees) ----------------


def test_two_outcomes_buy_and_sell_exact():
    pools = amm.initial_pools(2, 1000)  # 1e9 micro-shares each
    bought = amm.buy(pools, 0, 100)
    # x = 1e8; pool_0' = ceil(1e9 · 1e9 / 1.1e9) = ceil(909090909.09…) = 909090910
    assert bought.pools == [909_090_910, 1_100_000_000]
    assert bought.shares == 1_000_000_000 + 100_000_000 - 909_090_910 == 190_909_090
    assert amm.prices(bought.pools) == [
        Fraction(1_100_000_000, 2_009_090_910),
        Fraction(909_090_910, 2_009_090_910),
    ]
    # cost(r) = r·1e6 + ceil(909090910 · 1.1e9 / (1.1e9 − r·1e6)) − 909090910
    assert amm.sell_cost(bought.pools, 0, 99) == 188_910_090
    assert amm.sell_cost(bought.pools, 0, 100) == 190_909_091  # one micro-share too many
    sold = amm.sell(bought.pools, 0, bought.shares)
    assert (sold.points, sold.cost, sold.shares) == (99, 188_910_090, 190_909_090)
    # every share sold leaves the position; the 1_999_000 beyond cost(99) stay in the pool
    assert sold.left_in_pool == 1_999_000
    assert sold.pools == [909_090_910 + 190_909_090 - 99_000_000, 1_001_000_000]


def test_three_outcomes_buys_and_sell_exact():
    pools = amm.initial_pools(3, 1000)
    first = amm.buy(pools, 0, 100)
    # pool_0' = ceil(1e27 / 1.1e9²) = ceil(826446280.99…) = 826446281
    assert first.pools == [826_446_281, 1_100_000_000, 1_100_000_000]
    assert first.shares == 273_553_719
    second = amm.buy(first.pools, 2, 50)
    # pool_2' = ceil(1.1e9 · 826446281 · 1.1e9 / (876446281 · 1.15e9)) = 992148905
    assert second.pools == [876_446_281, 1_150_000_000, 992_148_905]
    assert second.shares == 157_851_095
    sold = amm.sell(second.pools, 0, first.shares)
    assert (sold.points, sold.cost, sold.shares) == (94, 271_910_845, first.shares)
    assert amm.sell_cost(second.pools, 0, 95) == 275_086_580 > first.shares
    assert sold.pools == [876_446_281 + first.shares - 94_000_000, 1_056_000_000, 898_148_905]


def test_fee_is_the_ceiling_of_the_basis_points():
    assert amm.fee_for(101, 250) == 3  # 2.525 → 3
    assert amm.fee_for(400, 250) == 10
    assert amm.fee_for(1, 1) == 1
    assert amm.fee_for(1000, 0) == 0


def test_sell_of_less_than_one_point_of_shares_returns_nothing_and_the_shares_join_the_pool():
    pools = amm.buy(amm.initial_pools(2, 1000), 0, 100).pools
    result = amm.sell(pools, 0, 999_999)
    assert (result.points, result.cost, result.shares) == (0, 0, 999_999)
    assert result.pools == [pools[0] + 999_999, pools[1]]


@pytest.mark.parametrize("shares", [0, -1])
def test_sell_refuses_a_non_positive_number_of_shares(shares):
    with pytest.raises(ValueError):
        amm.sell(amm.initial_pools(2, 100), 0, shares)


def test_ten_outcomes_quote_exact():
    pools = amm.initial_pools(10, 1000)
    bought = amm.buy(pools, 9, 10)
    # pool_9' = ceil(1e9 · 1e81 / 1.01e9⁹) exactly
    expected_pool = -(-(10**9 * 10**81) // (1_010_000_000**9))
    assert bought.pools[9] == expected_pool == 914_339_825
    assert bought.shares == 10**9 + 10**7 - 914_339_825
    assert sum(amm.prices(bought.pools)) == 1


# --- §5 pari-mutuel ----------------------------------------------------------------------------

STAKES = st.lists(st.integers(1, 10**6), min_size=1, max_size=12)


@st.composite
def winners_and_pot(draw: st.DrawFn) -> tuple[list[WinnerStake], int]:
    stakes = draw(STAKES)
    order = draw(st.permutations(range(len(stakes))))
    winners = [WinnerStake(f"m{k}", s, order[k]) for k, s in enumerate(stakes)]
    losing = draw(st.integers(0, 10**7))  # everyone else's stakes on the other outcomes
    return winners, sum(stakes) + losing


@FAST
@given(winners_and_pot())
def test_parimutuel_payouts_sum_to_the_pot_exactly(case):
    winners, pot = case
    payouts = amm.parimutuel_payouts(winners, pot)
    assert sum(payouts.values()) == pot
    assert set(payouts) == {w.member for w in winners}


@FAST
@given(winners_and_pot())
def test_parimutuel_each_gets_the_floor_or_one_more_and_leftover_is_below_winner_count(case):
    winners, pot = case
    total = sum(w.stake for w in winners)
    payouts = amm.parimutuel_payouts(winners, pot)
    floors = {w.member: w.stake * pot // total for w in winners}
    extra = {m: payouts[m] - floors[m] for m in floors}
    assert set(extra.values()) <= {0, 1}
    leftover = pot - sum(floors.values())
    assert leftover == sum(extra.values()) < len(winners)


@FAST
@given(winners_and_pot())
def test_parimutuel_leftover_goes_to_largest_remainders_then_earliest_first_bet(case):
    winners, pot = case
    total = sum(w.stake for w in winners)
    payouts = amm.parimutuel_payouts(winners, pot)
    floors = {w.member: w.stake * pot // total for w in winners}

    def rank(w: WinnerStake) -> tuple[int, int]:
        return (-(w.stake * pot % total), w.first_bet)

    got = [w for w in winners if payouts[w.member] > floors[w.member]]
    missed = [w for w in winners if payouts[w.member] == floors[w.member]]
    for g in got:
        for m in missed:
            assert rank(g) < rank(m)


@FAST
@given(winners_and_pot())
def test_parimutuel_payout_is_monotone_in_stake(case):
    winners, pot = case
    payouts = amm.parimutuel_payouts(winners, pot)
    for a in winners:
        for b in winners:
            if a.stake > b.stake:
                assert payouts[a.member] >= payouts[b.member]
            if a.stake == b.stake:
                assert abs(payouts[a.member] - payouts[b.member]) <= 1


def test_parimutuel_hand_example_largest_remainder():
    # T = 1001, W = 300: 100·1001/300 = 333 r 200, 200·1001/300 = 667 r 100 → one leftover
    # point, to the larger remainder.
    payouts = amm.parimutuel_payouts(
        [WinnerStake("alice", 100, 1), WinnerStake("bob", 200, 2)], 1001
    )
    assert payouts == {"alice": 334, "bob": 667}


def test_parimutuel_hand_example_ties_go_to_the_earliest_first_bet():
    # T = 10, W = 3: each 1·10/3 = 3 r 1; one leftover point, all remainders equal → the
    # earliest first bet (carol, 5) wins it, not the first in the list.
    winners = [WinnerStake("alice", 1, 7), WinnerStake("bob", 1, 9), WinnerStake("carol", 1, 5)]
    assert amm.parimutuel_payouts(winners, 10) == {"alice": 3, "bob": 3, "carol": 4}
    # T = 11: two leftover points → carol, then alice.
    assert amm.parimutuel_payouts(winners, 11) == {"alice": 4, "bob": 3, "carol": 4}


def test_parimutuel_hand_example_remainder_beats_an_earlier_bet():
    # T = 7, W = 3: a 2·7/3 = 4 r 2, b 1·7/3 = 2 r 1; 1 leftover → a (larger remainder) even
    # though b bet first.
    winners = [WinnerStake("a", 2, 2), WinnerStake("b", 1, 1)]
    assert amm.parimutuel_payouts(winners, 7) == {"a": 5, "b": 2}


def test_parimutuel_sole_winner_takes_the_whole_pot():
    assert amm.parimutuel_payouts([WinnerStake("solo", 3, 1)], 1000) == {"solo": 1000}


def test_parimutuel_nobody_backed_the_winner_pays_nobody():
    assert amm.parimutuel_payouts([], 500) == {}
    assert amm.parimutuel_payouts([WinnerStake("z", 0, 1)], 500) == {}


@FAST
@given(st.lists(st.integers(0, 10**6), min_size=2, max_size=10))
def test_parimutuel_probabilities_are_shares_of_the_stakes(staked):
    probabilities = amm.parimutuel_probabilities(staked)
    assert sum(probabilities) == 1
    if sum(staked) == 0:
        assert probabilities == [Fraction(1, len(staked))] * len(staked)
    else:
        assert probabilities == [Fraction(s, sum(staked)) for s in staked]
