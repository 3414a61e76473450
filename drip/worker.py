"""The DRIP worker (`manage.py run_drip_worker`): sends queued withdrawals in batches and keeps
the outbox honest (docs/drip.md).

Each pass:
1. rows left in `sending` longer than `DRIP_SENDING_STALE_SECONDS` (a process died between
   sending and recording the answer) become `in_doubt` — never re-sent — and for every in-doubt
   row without evidence yet, the member's current DRIP balance is written onto it for the
   moderator who decides;
2. for each guild with due withdrawals: claim ≤ 100 (`sending`, committed), send them as one
   batch request (one update per member), and record the answer: confirmed, or failed and
   reversed, or — when the answer is lost — in doubt. A certain non-application (no connection,
   5xx, 429, a rejected key) puts the rows back to `pending`, due after `Retry-After` or an
   exponential backoff with jitter. A batch DRIP refuses as a whole (404/422: an all-or-nothing
   batch with one bad member) applied nothing, so its members are then sent one by one;
3. while the circuit breaker is open nothing is claimed: the rows wait, untouched.

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

from . import metrics, selectors, services
from .client import (
    BATCH_MAX,
    DripBadRequest,
    DripClient,
    DripError,
    DripInDoubt,
    DripInsufficient,
    DripNotMember,
    DripRateLimited,
    DripUnavailable,
    breaker_state,
)
from .models import DripTransfer
from .selectors import LinkCredentials

T = TypeVar("T")

logger = logging.getLogger(__name__)


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
        except Exception as exc:  # an unreadable key or a removed link: the rows wait
            logger.warning("DRIP: guild %s cannot be sent: %s", guild_id, exc)
            return False
        wait = self.client.rate_exhausted(creds.realm_id)
        if wait:  # DRIP said this window is used up: claim nothing, spend no request on a 429
            logger.info("DRIP: realm of guild %s rate-limited for %.1fs more", guild_id, wait)
            return False
        rows: list[DripTransfer] = await _db(
            services.drip_batch_claim, guild_id=guild_id, limit=self.batch_max
        )
        if not rows:
            return False
        ids = [r.pk for r in rows]
        totals: dict[int, int] = defaultdict(int)
        for r in rows:
            totals[r.user_id] += r.amount
        updates = sorted(totals.items())
        report.batches.append(len(updates))
        metrics.batch_observed(len(updates))
        try:
            outcome = await self.client.batch_update(
                realm_id=creds.realm_id,
                api_key=creds.api_key,
                updates=updates,
                realm_point_id=creds.realm_point_id,
            )
        except DripInDoubt as exc:
            flagged = await _db(
                services.drip_transfers_in_doubt, transfer_ids=ids, reason=exc.message
            )
            report.in_doubt += len(flagged)
            logger.warning("DRIP: batch of %d in doubt (guild %s): %s", len(ids), guild_id, exc)
            return False
        except (DripNotMember, DripInsufficient) as exc:
            # DRIP refused the whole request (an all-or-nothing batch): nothing was applied.
            # Send each member alone so one member who left the realm blocks nobody else.
            logger.info("DRIP: batch for guild %s refused whole (%s); one by one", guild_id, exc)
            await self._send_each(creds, rows, updates, report)
            return False
        except DripError as exc:
            await self._release(guild_id, rows, exc, report)
            return False
        await self._settle(rows, outcome.balances, outcome.errors, outcome.request_id, report)
        await _db(services.drip_link_error_set, guild_id=guild_id, message="")
        return len(rows) == self.batch_max

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

    async def _send_each(
        self,
        creds: LinkCredentials,
        rows: list[DripTransfer],
        updates: list[tuple[int, int]],
        report: PassReport,
    ) -> None:
        """Send a refused batch's members one request each (their rows are `sending`)."""
        by_user: dict[int, list[DripTransfer]] = defaultdict(list)
        for r in rows:
            by_user[r.user_id].append(r)
        for index, (user_id, amount) in enumerate(updates):
            mine = by_user[user_id]
            try:
                credential = await self.client.balance_update(
                    realm_id=creds.realm_id,
                    api_key=creds.api_key,
                    user_id=user_id,
                    amount=amount,
                    realm_point_id=creds.realm_point_id,
                )
            except DripInDoubt as exc:
                ids = [r.pk for r in mine]
                flagged = await _db(
                    services.drip_transfers_in_doubt, transfer_ids=ids, reason=exc.message
                )
                report.in_doubt += len(flagged)
            except (DripNotMember, DripInsufficient, DripBadRequest) as exc:
                await self._settle(mine, {}, {user_id: exc.message}, exc.request_id, report)
            except DripError as exc:  # rate limit, outage, key: the rest waits
                rest = [r for u, _ in updates[index:] for r in by_user[u]]
                await self._release(creds.guild_id, rest, exc, report)
                return
            else:
                await self._settle(mine, {user_id: credential.balance}, {}, "", report)

    async def _recheck(self, rows: list[DripTransfer]) -> None:
        """Write each in-doubt member's DRIP balance now onto their rows, as evidence for the
        moderator who decides. Evidence, not proof (other DRIP activity moves balances too), so
        nothing is decided here."""
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
                balance = seen.get(r.user_id)
                notes[r.pk] = (
                    f"DRIP balance at {stamp}: {balance:,}; this transfer would have changed it "
                    f"by {r.signed_amount:+,}."
                    if balance is not None
                    else f"DRIP did not know the member at {stamp}."
                )
        if notes:
            await _db(services.drip_transfers_note, notes=notes)

    async def run_forever(self, *, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.run_once()
                if report.batches or report.flagged_stale:
                    logger.info("DRIP worker pass: %s", report)
            except Exception:
                logger.exception("DRIP worker pass failed; retrying after the interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
