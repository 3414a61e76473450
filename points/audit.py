"""The ledger audit (DOMAIN §3 invariants L1–L3 here; L4 and the collateral identity of §4.5
are registered by the apps that know markets and positions, see `register_invariant`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from django.db.models import Sum

from .models import Account, Transfer


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


Invariant = Callable[[AuditReport, Mapping[int, int]], None]
"""A registered check: appends violations to the report, given every escrow's balance by
market id."""

_invariants: list[Invariant] = []


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
        if a["kind"] != Account.Kind.TREASURY and a["balance"] < 0:
            report.violations.append(f"L3 account {a['id']} ({a['kind']}) is {a['balance']}")
        if a["kind"] == Account.Kind.ESCROW:
            escrow_by_market[a["market_id"]] = a["balance"]
    report.guilds = len(guild_sums)
    for guild_id, total in sorted(guild_sums.items()):
        if total != 0:
            report.violations.append(f"L1 guild {guild_id} balances sum to {total}, not 0")

    for invariant in _invariants:
        invariant(report, escrow_by_market)
    return report


def register_invariant(invariant: Invariant) -> None:
    """Add a check to every `ledger_audit` run (once per function). Apps that own what the
    ledger's escrows collateralise register theirs at start-up: `betting` registers L4 and the
    collateral identity of §4.5 in `BettingConfig.ready`."""
    if invariant not in _invariants:
        _invariants.append(invariant)
