"""The ledger's numbers for the operators, offered through `core.telemetry` (registered in
`PointsConfig.ready()`): points in circulation and in escrow, and the ledger audit that decides
`pm_ledger_solvent` (DOMAIN §3)."""

from __future__ import annotations

from django.db.models import Sum

from core.telemetry import Reading

from .audit import ledger_audit
from .models import Account


def ledger_gauges() -> list[Reading]:
    """Two sums in one aggregate query: what the treasuries issued (their balances are the
    negative of it, DOMAIN §3) and what the market escrows hold."""
    sums = dict(
        Account.objects.filter(kind__in=[Account.Kind.TREASURY, Account.Kind.ESCROW])
        .values_list("kind")
        .annotate(total=Sum("balance"))
        .order_by()
    )
    return [
        Reading(
            "pm_points_in_circulation",
            "Points issued by the treasuries (minus their balances)",
            -(sums.get(Account.Kind.TREASURY) or 0),
        ),
        Reading(
            "pm_points_in_escrow",
            "Points held as collateral by market escrows",
            sums.get(Account.Kind.ESCROW) or 0,
        ),
    ]


def ledger_violations() -> list[str]:
    """Run the full ledger audit; the violations it found (none when the ledger is sound)."""
    return ledger_audit().violations
