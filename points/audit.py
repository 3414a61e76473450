"""The ledger audit (DOMAIN §3 invariants L1–L4, and the collateral identity of §4.5)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Sum

from .models import Account, Transfer

SHARE_SCALE = 1_000_000


@dataclass
class AuditReport:
    accounts: int = 0
    transfers: int = 0
    guilds: int = 0
    markets: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        state = "OK" if self.ok else f"FAILED ({len(self.violations)} violations)"
        return (
            f"ledger audit {state}: {self.guilds} guilds, {self.accounts} accounts, "
            f"{self.transfers} transfers, {self.markets} markets checked (L1–L4, §4.5)"
        )


def ledger_audit() -> AuditReport:
    """Check every invariant over every guild; returns the violations instead of raising."""
    report = AuditReport()
    accounts = list(Account.objects.values("id", "guild_id", "kind", "market_id", "balance"))
    report.accounts = len(accounts)
    incoming = dict(
        Transfer.objects.values_list("destination_id").annotate(s=Sum("amount")).order_by()
    )
    outgoing = dict(Transfer.objects.values_list("source_id").annotate(s=Sum("amount")).order_by())
    report.transfers = Transfer.objects.count()

    guild_sums: dict[int, int] = defaultdict(int)
    escrow_by_market: dict[int, int] = {}
    for a in accounts:
        guild_sums[a["guild_id"]] += a["balance"]
        expected = incoming.get(a["id"], 0) - outgoing.get(a["id"], 0)
        if a["balance"] != expected:
            report.violations.append(
                f"L2 account {a['id']} ({a['kind']}) balance {a['balance']} != transfers {expected}"
            )
        if a["kind"] not in Account.ISSUER_KINDS and a["balance"] < 0:
            report.violations.append(f"L3 account {a['id']} ({a['kind']}) is {a['balance']}")
        if a["kind"] == Account.Kind.ESCROW:
            escrow_by_market[a["market_id"]] = a["balance"]
    report.guilds = len(guild_sums)
    for guild_id, total in sorted(guild_sums.items()):
        if total != 0:
            report.violations.append(f"L1 guild {guild_id} balances sum to {total}, not 0")

    _audit_markets(report, escrow_by_market)
    return report


def _audit_markets(report: AuditReport, escrow_by_market: dict[int, int]) -> None:
    """L4: every escrow equals its market's collateral and is 0 once settled; for amm markets
    `pool_i + Σ shares_i = collateral · SHARE_SCALE` for every outcome (§4.5); for pari-mutuel
    markets the escrow equals the sum of stakes."""
    from betting.models import Position
    from markets.models import Market, Outcome

    markets = {m["id"]: m for m in Market.objects.values("id", "status", "mechanism")}
    report.markets = len(markets)
    shares_by_outcome = dict(
        Position.objects.values_list("outcome_id").annotate(s=Sum("shares")).order_by()
    )
    stakes_by_outcome = dict(
        Position.objects.values_list("outcome_id").annotate(s=Sum("points_spent")).order_by()
    )
    outcomes: dict[int, list[dict]] = defaultdict(list)
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
