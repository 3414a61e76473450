"""The ledger audit's market invariants (DOMAIN §3 L4, §4.5), registered with
`points.audit` by `BettingConfig.ready`: the ledger knows escrows, not what they collateralise."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.db.models import Sum

from markets.amm import SHARE_SCALE
from markets.models import Market, Outcome
from points.audit import AuditReport
from points.models import Account

from .models import Order, Position


def collateral_audit(report: AuditReport, escrow_by_market: Mapping[int, int]) -> None:
    """L4: every escrow equals its market's collateral and is 0 once settled; for amm markets
    `pool_i + Σ shares_i = collateral · SHARE_SCALE` for every outcome (§4.5); for pari-mutuel
    markets the escrow equals the sum of stakes."""
    markets = {m["id"]: m for m in Market.objects.values("id", "status", "mechanism")}
    report.markets = len(markets)
    shares_by_outcome = dict(
        Position.objects.values_list("outcome_id").annotate(s=Sum("shares")).order_by()
    )
    stakes_by_outcome = dict(
        Position.objects.values_list("outcome_id").annotate(s=Sum("points_spent")).order_by()
    )
    outcomes: dict[int, list[Any]] = defaultdict(list)
    for o in Outcome.objects.values("id", "market_id", "pool", "staked"):
        outcomes[o["market_id"]].append(o)

    for market_id, market in sorted(markets.items()):
        escrow = escrow_by_market.get(market_id)
        if escrow is None:
            report.violations.append(f"L4 market {market_id} has no escrow account")
            continue
        if market["status"] in (Market.Status.RESOLVED, Market.Status.CANCELLED):
            if escrow != 0:
                report.violations.append(
                    f"L4 market {market_id} is {market['status']} but escrow holds {escrow}"
                )
            continue
        if market["mechanism"] == Market.Mechanism.AMM:
            for o in outcomes[market_id]:
                held = shares_by_outcome.get(o["id"], 0) or 0
                if o["pool"] + held != escrow * SHARE_SCALE:
                    report.violations.append(
                        f"L4 market {market_id} outcome {o['id']}: pool {o['pool']} + shares "
                        f"{held} != collateral {escrow} × {SHARE_SCALE}"
                    )
        else:
            staked = sum(o["staked"] for o in outcomes[market_id])
            positions = sum(stakes_by_outcome.get(o["id"], 0) or 0 for o in outcomes[market_id])
            if not escrow == staked == positions:
                report.violations.append(
                    f"L4 market {market_id}: escrow {escrow}, outcome stakes {staked}, "
                    f"position stakes {positions} differ"
                )


def orders_audit(report: AuditReport, escrow_by_market: Mapping[int, int]) -> None:
    """DOMAIN §4.7: every order account equals the remaining budgets of its market's resting
    buy orders and is 0 once the market has left `open`; for every position the shares its
    resting sell orders reserve are at most the shares held."""
    accounts = dict(
        Account.objects.filter(kind=Account.Kind.ORDERS).values_list("market_id", "balance")
    )
    resting = Order.objects.filter(status=Order.Status.RESTING)
    budgets = dict(
        resting.filter(side=Order.Side.BUY)
        .values_list("market_id")
        .annotate(s=Sum("remaining"))
        .order_by()
    )
    status = dict(Market.objects.filter(pk__in=accounts).values_list("pk", "status"))
    for market_id in sorted(set(accounts) | set(budgets)):
        balance, owed = accounts.get(market_id, 0), budgets.get(market_id, 0) or 0
        if balance != owed:
            report.violations.append(
                f"§4.7 market {market_id}: order account {balance} != resting budgets {owed}"
            )
        if balance and status.get(market_id) != Market.Status.OPEN:
            report.violations.append(
                f"§4.7 market {market_id} is {status.get(market_id)} but its order account "
                f"holds {balance}"
            )
    reserved = (
        resting.filter(side=Order.Side.SELL)
        .values_list("user_id", "outcome_id")
        .annotate(s=Sum("remaining"))
        .order_by()
    )
    held = {
        (u, o): s for u, o, s in Position.objects.values_list("user_id", "outcome_id", "shares")
    }
    for user_id, outcome_id, shares in reserved:
        if shares > held.get((user_id, outcome_id), 0):
            report.violations.append(
                f"§4.7 member {user_id} outcome {outcome_id}: {shares} reserved > "
                f"{held.get((user_id, outcome_id), 0)} held"
            )
