"""A market's public audit (issue 26): every event, trade and transfer of one market as CSV, in
the order they happened, with the state after each step and a column that checks §4.5
(`pool_i + Σ shares_i = collateral · SHARE_SCALE` for every outcome; for a pool, escrow = stakes)
after every trade, so any member can redo the market maker's arithmetic.

The pools are replayed from the opening liquidity with the market maker's own maths
(`markets.amm`), independently of what the database stores, and each trade's shares are checked
against the replay; the last line compares the replay with the stored pools and the escrow.
Reads only (4 queries). Orders do not exist yet; when they do, they join the timeline here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from markets import amm
from markets.amm import SHARE_SCALE
from markets.models import Market, MarketEvent, Outcome
from points.models import Account, Transfer

from .models import Trade

HEADER = [
    "step",
    "time_utc",
    "record",
    "id",
    "what",
    "member_id",
    "outcome",
    "points",
    "fee",
    "micro_shares",
    "escrow_after",
    "pools_after",
    "shares_held_after",
    "check_4_5",
]
SETTLEMENT_CODES = {
    Transfer.Code.PAYOUT,
    Transfer.Code.REFUND,
    Transfer.Code.LIQUIDITY_RETURN,
}


@dataclass
class Replay:
    """The market's state as the audit replays it."""

    amm: bool
    pools: list[int]
    held: list[int]
    """Micro-shares (amm) or points staked (pool) held by members, per outcome."""
    escrow: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self) -> str:
        """§4.5 now, in words: "ok" with the equation, or what does not add up."""
        if self.amm:
            target = self.escrow * SHARE_SCALE
            bad = [
                i
                for i, (p, h) in enumerate(zip(self.pools, self.held, strict=True))
                if p + h != target
            ]
            if bad:
                return f"MISMATCH outcomes {bad}: pool + shares != {target}"
            return f"ok: pool + shares = {self.escrow} x {SHARE_SCALE} for every outcome"
        stakes = sum(self.held)
        if stakes != self.escrow:
            return f"MISMATCH: stakes {stakes} != escrow {self.escrow}"
        return f"ok: stakes = escrow = {self.escrow}"

    def trade(self, t: Trade, outcome: int) -> None:
        if not self.amm:
            self.held[outcome] += t.amount
            return
        if t.kind == Trade.Kind.BUY:
            result = amm.buy(self.pools, outcome, t.amount - t.fee)
            if result.shares != t.shares:
                self.problems.append(f"trade {t.pk}: replay gives {result.shares} shares")
            self.pools = result.pools
            self.held[outcome] += t.shares
        else:
            sold = amm.sell(self.pools, outcome, t.shares)
            if sold.points != t.amount:
                self.problems.append(f"trade {t.pk}: replay pays {sold.points} points")
            self.pools = sold.pools
            self.held[outcome] -= t.shares


def _pools(state: Replay) -> str:
    return ";".join(str(p) for p in state.pools) if state.amm else ""


def market_audit_rows(*, market_id: int) -> Iterator[list[str]]:
    """The audit's rows, header first."""
    market = Market.objects.get(pk=market_id)
    outcomes = list(Outcome.objects.filter(market=market).order_by("position"))
    position_of = {o.pk: o.position for o in outcomes}
    is_amm = market.mechanism == Market.Mechanism.AMM
    state = Replay(
        amm=is_amm,
        pools=amm.initial_pools(len(outcomes), market.liquidity) if is_amm else [],
        held=[0] * len(outcomes),
    )
    escrow_id = (
        Account.objects.filter(kind=Account.Kind.ESCROW, market=market)
        .values_list("pk", flat=True)
        .first()
    )
    transfers = list(
        Transfer.objects.filter(market=market)
        .select_related("source", "destination")
        .order_by("id")
    )
    trades = list(Trade.objects.filter(market=market).order_by("id"))
    events = list(MarketEvent.objects.filter(market=market).order_by("id"))

    by_trade: dict[str, list[Transfer]] = {}
    loose: list[Transfer] = []
    keys = {t.idempotency_key for t in trades}
    for tr in transfers:
        base = tr.idempotency_key.rsplit(":", 1)[0]
        if base in keys:
            by_trade.setdefault(base, []).append(tr)
        else:
            loose.append(tr)
    # The timeline: (time, order within a moment, id, kind, record).
    timeline: list[tuple[Any, ...]] = [(e.created_at, 0, e.pk, "event", e) for e in events]
    timeline += [(tr.created_at, 1, tr.pk, "transfer", tr) for tr in loose]
    timeline += [(t.created_at, 2, t.pk, "trade", t) for t in trades]
    timeline.sort(key=lambda row: row[:3])

    yield HEADER
    step = 0

    def transfer_row(tr: Transfer, check: str = "") -> list[str]:
        if tr.destination_id == escrow_id:
            state.escrow += tr.amount
        elif tr.source_id == escrow_id:
            state.escrow -= tr.amount
        member = tr.destination.owner_id or tr.source.owner_id or ""
        return [
            str(step),
            tr.created_at.isoformat(),
            "transfer",
            str(tr.pk),
            f"{tr.code}: {tr.source} -> {tr.destination}",
            str(member),
            "",
            str(tr.amount),
            "",
            "",
            str(state.escrow),
            _pools(state),
            ";".join(str(h) for h in state.held),
            check,
        ]

    for at, _, pk, kind, record in timeline:
        step += 1
        if kind == "event":
            yield [
                str(step),
                at.isoformat(),
                "event",
                str(pk),
                record.type,
                str(record.actor_id or ""),
                "",
                "",
                "",
                "",
                str(state.escrow),
                _pools(state),
                ";".join(str(h) for h in state.held),
                "",
            ]
        elif kind == "transfer":
            row = transfer_row(record)
            if record.code == Transfer.Code.LIQUIDITY:
                row[-1] = state.check()
            elif record.code in SETTLEMENT_CODES:
                row[-1] = "settlement" + (": escrow 0" if state.escrow == 0 else "")
            yield row
        else:
            for tr in by_trade.get(record.idempotency_key, []):
                yield transfer_row(tr, f"part of trade {pk}")
                step += 1
            outcome = position_of[record.outcome_id]
            state.trade(record, outcome)
            yield [
                str(step),
                at.isoformat(),
                "trade",
                str(pk),
                record.kind,
                str(record.user_id),
                str(outcome),
                str(record.amount),
                str(record.fee),
                str(record.shares),
                str(state.escrow),
                _pools(state),
                ";".join(str(h) for h in state.held),
                state.check(),
            ]
    stored = [o.pool for o in outcomes]
    final = [
        str(step + 1),
        "",
        "summary",
        "",
        "replayed pools vs stored" if is_amm else "replayed stakes vs stored",
        "",
        "",
        "",
        "",
        "",
        str(state.escrow),
        _pools(state),
        ";".join(str(h) for h in state.held),
    ]
    if is_amm and state.pools != stored and not market.is_settled:
        state.problems.append(f"replayed pools {state.pools} != stored {stored}")
    if not is_amm and state.held != [o.staked for o in outcomes]:
        state.problems.append("replayed stakes differ from the stored ones")
    if market.is_settled and state.escrow != 0:
        state.problems.append(f"settled but escrow holds {state.escrow}")
    final.append("MISMATCH: " + "; ".join(state.problems) if state.problems else "ok")
    yield final


def market_audit_csv(*, market_id: int, max_bytes: int) -> tuple[bytes, int, int]:
    """The audit as UTF-8 CSV of at most `max_bytes`: (content, rows written, rows in all). A
    market too long for one attachment keeps its first rows and its summary line."""
    rows = list(market_audit_rows(market_id=market_id))

    def line(row: list[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        return out.getvalue().encode()

    head, tail = line(rows[0]), line(rows[-1])
    room = max_bytes - len(head) - len(tail)
    body: list[bytes] = []
    for row in rows[1:-1]:
        encoded = line(row)
        if len(encoded) > room:
            break
        room -= len(encoded)
        body.append(encoded)
    return b"".join([head, *body, tail]), len(body) + 2, len(rows)
