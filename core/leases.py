"""Leases: exactly one process at a time runs each singleton job — the notifier, the market
clock, the DRIP worker — whichever process that is (docs/deploy.md §8).

A lease is a row (`core.models.Lease`) naming its holder and when it expires, on the database's
clock. `lease_claim` takes the row if it is free or expired, or renews it for its own holder, in
one `UPDATE … WHERE holder = me OR expires_at < now()`: two claimers are ordered by the row lock,
and the second sees the first's row, so at most one wins. A holder renews every `LEASE_RENEW`
seconds; when it dies, its row expires `LEASE_SECONDS` after its last renewal and the next
standby to ask (within `LEASE_RENEW`) takes it: takeover within `LEASE_SECONDS + LEASE_RENEW`
(20 s by default; the bound issue 24 sets is 30 s).

Why a row and not a PostgreSQL advisory lock: a session advisory lock lives on one server
connection, which PgBouncer in transaction mode hands to other clients between transactions,
so it needs a dedicated direct connection per process, and it works on PostgreSQL only. A row
lease is one short transaction each renewal, through PgBouncer or not, on SQLite too.

A holder trusts its lease only until `LEASE_SECONDS` after it *sent* its last successful claim
(`LeaseKeeper.held`), which is never later than the expiry the database wrote: a holder cut off
from the database stops its job before anyone else may start it. The jobs themselves resume from
what they saved (the notifier's cursor and delivery rows, the DRIP outbox's states, the markets'
statuses), so a takeover neither repeats nor skips their work.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Case, ExpressionWrapper, F, Q, When
from django.db.models.functions import Now

from .models import Lease

T = TypeVar("T")

logger = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
"""How long a lease lasts after its holder's last renewal (setting `LEASE_SECONDS`)."""
LEASE_RENEW = 5.0
"""How often holders renew and standbys ask (setting `LEASE_RENEW_SECONDS`)."""
NOTIFIER = "notifier"
MARKET_CLOCK = "market-clock"
DRIP_WORKER = "drip-worker"

_LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

PROCESS_HOLDER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
"""This process's name as a holder (host, pid and a random part: a restarted process with a
reused pid is a new holder)."""


def lease_seconds() -> float:
    return float(getattr(settings, "LEASE_SECONDS", LEASE_SECONDS))


def lease_renew_seconds() -> float:
    return float(getattr(settings, "LEASE_RENEW_SECONDS", LEASE_RENEW))


def _claim(name: str, holder: str, seconds: float) -> int:
    mine = Q(holder=holder)
    return (
        Lease.objects.filter(name=name)
        .filter(mine | Q(expires_at__lt=Now()))
        .update(
            holder=holder,
            expires_at=ExpressionWrapper(
                Now() + dt.timedelta(seconds=seconds), output_field=models.DateTimeField()
            ),
            epoch=Case(When(mine, then=F("epoch")), default=F("epoch") + 1),
            acquired_at=Case(When(mine, then=F("acquired_at")), default=Now()),
        )
    )


def lease_claim(name: str, holder: str = PROCESS_HOLDER, *, seconds: float | None = None) -> int:
    """Take lease `name` for `holder` if it is free or expired, or renew it if `holder` has it.
    Returns the lease's epoch when `holder` holds it afterwards, 0 when someone else does."""
    seconds = lease_seconds() if seconds is None else seconds
    updated = _claim(name, holder, seconds)
    if not updated and not Lease.objects.filter(name=name).exists():
        # The first claim ever: make the row (expired), then claim it like any other.
        Lease.objects.bulk_create([Lease(name=name, expires_at=_LONG_AGO)], ignore_conflicts=True)
        updated = _claim(name, holder, seconds)
    if not updated:
        return 0
    return Lease.objects.filter(name=name).values_list("epoch", flat=True).get()


def lease_release(name: str, holder: str = PROCESS_HOLDER) -> bool:
    """Give lease `name` up at once (a clean shutdown): the next standby to ask takes it without
    waiting for it to expire. False if `holder` did not hold it."""
    return bool(
        Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=_LONG_AGO)
    )


@dataclass(frozen=True)
class LeaseState:
    name: str
    holder: str
    expires_at: dt.datetime
    epoch: int


def lease_get(name: str) -> LeaseState | None:
    """Who holds lease `name` and until when (None if nobody ever claimed it)."""
    row = Lease.objects.filter(name=name).first()
    if row is None:
        return None
    return LeaseState(row.name, row.holder, row.expires_at, row.epoch)


def lease_holder_now(name: str) -> str | None:
    """Who holds lease `name` now by the database's clock (None: nobody, or it has expired)."""
    return (
        Lease.objects.filter(name=name, expires_at__gt=Now())
        .values_list("holder", flat=True)
        .first()
    )


def holder_pid(holder: str | None) -> int | None:
    """The process id in a holder's name (`PROCESS_HOLDER`: host, pid, random part)."""
    return int(holder.split(":")[1]) if holder else None


Call = Callable[..., Awaitable[Any]]


async def _in_thread(func: Callable[..., T], /, **kwargs: Any) -> T:
    from channels.db import database_sync_to_async

    result: T = await database_sync_to_async(func, thread_sensitive=False)(**kwargs)
    return result


class LeaseKeeper:
    """Keeps claiming lease `name` for this process in the background (`run`), and says whether
    the job may run right now (`held`). `call` runs a database function off the event loop (the
    bot passes its own bounded `db`)."""

    def __init__(
        self,
        name: str,
        *,
        holder: str = PROCESS_HOLDER,
        seconds: float | None = None,
        renew: float | None = None,
        call: Call | None = None,
    ) -> None:
        self.name = name
        self.holder = holder
        self.seconds = lease_seconds() if seconds is None else seconds
        self.renew = lease_renew_seconds() if renew is None else renew
        self.call: Call = call or _in_thread
        self.epoch = 0
        self._valid_until = 0.0
        self._changed = asyncio.Event()
        self._claiming: asyncio.Future[int] | None = None
        """The claim in flight: a cancelled wait does not stop it in its thread."""

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    async def claim_once(self) -> bool:
        """One claim or renewal; True if this process holds the lease afterwards."""
        asked = time.monotonic()
        was = self.held
        self._claiming = asyncio.ensure_future(
            self.call(lease_claim, name=self.name, holder=self.holder, seconds=self.seconds)
        )
        try:
            epoch = await asyncio.shield(self._claiming)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Keep what we had until it runs out: a holder cut off stops in time by itself.
            logger.warning("lease %s: could not reach the database", self.name, exc_info=True)
            return self.held
        if epoch:
            self._valid_until = asked + self.seconds
            if not was or epoch != self.epoch:
                logger.info("lease %s taken by %s (epoch %s)", self.name, self.holder, epoch)
            self.epoch = epoch
        else:
            if was:
                logger.warning("lease %s lost by %s", self.name, self.holder)
            self._valid_until = 0.0
        if was != self.held:
            self._changed.set()
        return self.held

    async def run(self) -> None:
        """Claim or renew every `renew` seconds until cancelled; then give the lease up. A claim
        still running in its thread when the keeper is cancelled is waited for first: released
        before it commits, the lease would be taken again by the claim, and held by a process
        that stopped until it expires."""
        try:
            while True:
                await self.claim_once()
                await asyncio.sleep(self.renew)
        finally:
            claiming, self._claiming = self._claiming, None
            in_flight = claiming is not None and not claiming.done()
            if claiming is not None:
                await asyncio.gather(claiming, return_exceptions=True)
            if self.held or in_flight:
                self._valid_until = 0.0
                try:
                    await asyncio.shield(
                        self.call(lease_release, name=self.name, holder=self.holder)
                    )
                except Exception:  # it expires by itself
                    logger.warning("lease %s: not released", self.name, exc_info=True)

    async def wait_changed(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, waking early when the lease is won or lost."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=timeout)
