"""The DRIP worker (`manage.py run_drip_worker`): sends queued withdrawals in batches and keeps
the outbox honest (docs/drip.md).

Each pass:
1. rows left in `sending` longer than `DRIP_SENDING_STALE_SECONDS` (a process died between
   sending and recording the answer) become `in_doubt` — never re-sent — and for every in-doubt
   row without evidence yet, the member's current DRIP balance is written onto it, beside the
   `initiatorId` it was sent with and the balance before, for the moderator who decides;
2. for each guild with due withdrawals whose realm has room in its shared rate-limit window:
   claim ≤ 100 (`sending`, committed); look the members up (membership first: one who is not a
   linked member is refused and reversed without a write); record the `initiatorId` and their
   balances before; send one batch; record the answer: confirmed, or failed and reversed, or in
   doubt. A write is applied until proven otherwise: a 5xx, a timeout, a dropped connection or an
   unreadable answer leaves the batch in doubt, never re-sent. A refusal that proves nothing was
   applied for the key or the rate (401/403/429, or no connection at all) puts the rows back to
   `pending`, due after `Retry-After`/the window's reset or an exponential backoff with jitter.
   A batch refused as a whole for what it asked (400/404/409/422) applied nothing: it is split
   in halves and sent again until the bad update is alone, so the others confirm;
3. while the circuit breaker is open nothing is claimed: the rows wait, untouched.

A key that cannot be decrypted is written on the DRIP link (`last_error`, shown in the admin)
and reported by the worker's `/health/ready` (`drip.health.worker_ready`).

Before sending, guilds that chose automatic withdrawals get a withdrawal queued for every market
payout and refund posted since the last pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from core.leases import LeaseKeeper

from . import crypto, metrics, selectors, services
from .client import (
    BATCH_MAX,
    REFUSALS,
    DripClient,
    DripError,
    DripInDoubt,
    DripRateLimited,
    DripUnavailable,
    breaker_state,
    initiator_for_batch,
    initiator_for_transfer,
)
from .models import DripTransfer
from .selectors import LinkCredentials

T = TypeVar("T")

logger = logging.getLogger(__name__)

MSG_NOT_MEMBER_REASON = "DRIP does not know you in this server's realm (join the realm first)"

key_problems: dict[int, str] = {}
"""Guilds whose stored key this worker could not decrypt, with the host's words (read by
`/health/ready`)."""


def evidence_text(row: DripTransfer, balance: int | None, stamp: str) -> str:
    """What a moderator needs to decide an in-doubt row from DRIP's activity log."""
    before = f"{row.drip_balance_before:,}" if row.drip_balance_before is not None else "unknown"
    now = f"{balance:,}" if balance is not None else "not a realm member"
    return (
        f"Look for initiatorId {row.initiator_id or '(none sent)'} in DRIP's activity log. "
        f"DRIP balance before: {before}; at {stamp}: {now}; this transfer would have changed "
        f"it by {row.signed_amount:+,}."
    )[:300]


async def _db(func: Callable[..., T], /, **kwargs: Any) -> T:
    return await database_sync_to_async(func, thread_sensitive=False)(**kwargs)


@dataclass
class PassReport:
    batches: list[int] = field(default_factory=list)
    confirmed: int = 0
    failed: int = 0
    in_doubt: int = 0
    released: int = 0
    flagged_stale: int = 0
    auto_queued: int = 0
    breaker_open: bool = False


class DripWorker:
    def __init__(
        self,
        *,
        client: DripClient | None = None,
        batch_max: int = BATCH_MAX,
        stale_seconds: float | None = None,
        retry_base: float = 2.0,
        retry_cap: float = 300.0,
    ) -> None:
        self.client = client or DripClient()
        self.batch_max = min(batch_max, BATCH_MAX)
        self.stale_seconds = (
            settings.DRIP_SENDING_STALE_SECONDS if stale_seconds is None else stale_seconds
        )
        self.retry_base = retry_base
        self.retry_cap = retry_cap

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter ("equal jitter": half fixed, half random)."""
        delay = min(self.retry_cap, self.retry_base * 2 ** max(0, attempts - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    async def run_once(self) -> PassReport:
        report = PassReport()
        stale = await _db(services.drip_transfers_stale_flag, older_than_seconds=self.stale_seconds)
        report.flagged_stale = len(stale)
        if stale:
            logger.warning("DRIP: %d transfers left in flight are now in doubt", len(stale))
        if not self._breaker_open(report):
            unchecked = await _db(selectors.drip_in_doubt_unchecked)
            if unchecked:
                await self._recheck(unchecked)
        for guild_id in await _db(selectors.drip_guilds_auto_withdraw):
            report.auto_queued += await _db(services.drip_auto_withdraw_queue, guild_id=guild_id)
        for guild_id in await _db(selectors.drip_guilds_due):
            while not self._breaker_open(report):
                if not await self._send_one_batch(guild_id, report):
                    break
        self._breaker_open(report)
        metrics.backlog_set(await _db(selectors.drip_backlog))
        return report

    def _breaker_open(self, report: PassReport) -> bool:
        report.breaker_open = breaker_state(self.client.breaker)["state"] == "open"
        return report.breaker_open

    async def _send_one_batch(self, guild_id: int, report: PassReport) -> bool:
        """Claim and send one batch; True when the guild may have more due right now."""
        try:
            creds = await _db(selectors.drip_link_credentials, guild_id=guild_id)
        except crypto.EncryptionUnavailable as exc:
            host = str(exc.details.get("host") or exc.message)
            key_problems[guild_id] = host
            await _db(services.drip_link_error_set, guild_id=guild_id, message=host)
            logger.error("DRIP: guild %s cannot be sent: %s", guild_id, host)
            return False
        except Exception as exc:  # a removed link: the rows wait
            logger.warning("DRIP: guild %s cannot be sent: %s", guild_id, exc)
            return False
        key_problems.pop(guild_id, None)
        wait = self.client.rate_exhausted(creds.realm_id)
        if wait:  # the realm's window is used up: claim nothing, spend no request on a 429
            logger.info("DRIP: realm of guild %s rate-limited for %.1fs more", guild_id, wait)
            return False
        rows: list[DripTransfer] = await _db(
            services.drip_batch_claim, guild_id=guild_id, limit=self.batch_max
        )
        if not rows:
            return False
        try:
            members = await self.client.members(
                realm_id=creds.realm_id,
                api_key=creds.api_key,
                user_ids=sorted({r.user_id for r in rows}),
                realm_point_id=creds.realm_point_id,
            )
        except DripError as exc:  # a read: nothing was sent, the rows go back
            await self._release(guild_id, rows, exc, report)
            return False
        strangers = [r for r in rows if r.user_id not in members]
        if strangers:
            await self._settle(
                strangers, {}, {r.user_id: MSG_NOT_MEMBER_REASON for r in strangers}, "", report
            )
        sent = [r for r in rows if r.user_id in members]
        before = {u: m.balance for u, m in members.items()}
        if sent and not await self._send(creds, sent, before, report):
            return False
        await _db(services.drip_link_error_set, guild_id=guild_id, message="")
        return len(rows) == self.batch_max

    async def _send(
        self,
        creds: LinkCredentials,
        rows: list[DripTransfer],
        before: dict[int, int | None],
        report: PassReport,
    ) -> bool:
        """Send `rows` (all `sending`) as one batch; a batch refused whole is split in halves.
        False when the rest must wait (rate limit, key, outage)."""
        totals: dict[int, int] = defaultdict(int)
        for r in rows:
            totals[r.user_id] += r.amount
        updates = sorted(totals.items())
        ids = [r.pk for r in rows]
        initiator = (
            initiator_for_transfer(rows[0].pk)
            if len(rows) == 1
            else initiator_for_batch(f"{rows[0].batch_id[:16]}-{rows[0].pk}-{len(rows)}")
        )
        await _db(
            services.drip_batch_prepare, transfer_ids=ids, before=before, initiator_id=initiator
        )
        report.batches.append(len(updates))
        metrics.batch_observed(len(updates))
        try:
            outcome = await self.client.batch_update(
                realm_id=creds.realm_id,
                api_key=creds.api_key,
                updates=updates,
                initiator_id=initiator,
                realm_point_id=creds.realm_point_id,
            )
        except DripInDoubt as exc:
            flagged = await _db(
                services.drip_transfers_in_doubt, transfer_ids=ids, reason=exc.message
            )
            report.in_doubt += len(flagged)
            logger.warning("DRIP: batch %s of %d in doubt: %s", initiator, len(ids), exc)
            return True
        except REFUSALS as exc:
            # Refused whole for what it asked: nothing was applied. Halve it until the bad
            # update is alone; a single refused update fails (and is reversed).
            if len(updates) == 1:
                reason = exc.details.get("issue") or exc.message
                await self._settle(rows, {}, {updates[0][0]: str(reason)}, exc.request_id, report)
                return True
            logger.info("DRIP: batch %s refused whole (%s); splitting it", initiator, exc)
            users = [u for u, _ in updates]
            half = set(users[: len(users) // 2])
            for part in (
                [r for r in rows if r.user_id in half],
                [r for r in rows if r.user_id not in half],
            ):
                if not await self._send(creds, part, before, report):
                    return False
            return True
        except DripError as exc:
            await self._release(creds.guild_id, rows, exc, report)
            return False
        await self._settle(rows, outcome.balances, outcome.errors, outcome.request_id, report)
        return True

    async def _settle(
        self,
        rows: list[DripTransfer],
        balances: dict[int, int],
        errors: dict[int, str],
        request_id: str,
        report: PassReport,
    ) -> None:
        counts = await _db(
            services.drip_batch_settle,
            transfer_ids=[r.pk for r in rows],
            balances=balances,
            errors=errors,
            request_id=request_id,
        )
        report.confirmed += counts[DripTransfer.Status.CONFIRMED]
        report.failed += counts[DripTransfer.Status.FAILED]
        report.in_doubt += counts[DripTransfer.Status.IN_DOUBT]

    async def _release(
        self, guild_id: int, rows: list[DripTransfer], exc: DripError, report: PassReport
    ) -> None:
        """DRIP certainly applied none of `rows`: back to pending, due after `Retry-After` or a
        backoff; a rejected key or request is shown on the link for moderators."""
        if isinstance(exc, DripRateLimited):
            delay = exc.retry_after or 60.0
        else:
            delay = self.backoff(max(r.attempts for r in rows))
        if not isinstance(exc, DripRateLimited | DripUnavailable):
            await _db(services.drip_link_error_set, guild_id=guild_id, message=exc.message)
        report.released += await _db(
            services.drip_batch_release,
            transfer_ids=[r.pk for r in rows],
            retry_at=timezone.now() + dt.timedelta(seconds=delay),
            error_code=exc.code,
            message=exc.message,
        )
        logger.info(
            "DRIP: %d withdrawals for guild %s not applied (%s); retry in %.1fs",
            len(rows),
            guild_id,
            exc.code,
            delay,
        )

    async def _recheck(self, rows: list[DripTransfer]) -> None:
        """Write each in-doubt member's DRIP balance now onto their rows, beside the
        `initiatorId` and the balance before, as evidence for the moderator who decides.
        Evidence, not proof (other DRIP activity moves balances too), so nothing is decided."""
        by_guild: dict[int, list[DripTransfer]] = defaultdict(list)
        for r in rows:
            by_guild[r.guild_id].append(r)
        notes: dict[int, str] = {}
        for guild_id, group in by_guild.items():
            try:
                creds = await _db(selectors.drip_link_credentials, guild_id=guild_id)
                seen = await self.client.balances(
                    realm_id=creds.realm_id,
                    api_key=creds.api_key,
                    user_ids=sorted({r.user_id for r in group}),
                    realm_point_id=creds.realm_point_id,
                )
            except Exception as exc:
                logger.info("DRIP: re-check of guild %s failed: %s", guild_id, exc)
                continue
            stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
            for r in group:
                notes[r.pk] = evidence_text(r, seen.get(r.user_id), stamp)
        if notes:
            await _db(services.drip_transfers_note, notes=notes)

    async def run_forever(
        self, *, interval: float, stop: asyncio.Event, lease: LeaseKeeper | None = None
    ) -> None:
        """A pass every `interval` seconds until `stop`; with `lease`, only while this process
        holds it (the other workers are standbys: one sends, as DRIP's rate limits want)."""
        keeper = asyncio.get_running_loop().create_task(lease.run()) if lease else None
        try:
            while not stop.is_set():
                if lease is None or lease.held:
                    try:
                        report = await self.run_once()
                        if report.batches or report.flagged_stale:
                            logger.info("DRIP worker pass: %s", report)
                    except Exception:
                        logger.exception("DRIP worker pass failed; retrying after the interval")
                wait = interval if lease is None or lease.held else min(interval, lease.renew)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
