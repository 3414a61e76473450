"""The fake DRIP API's state (`drip.fake`): realms with their members' balances and ghost
credentials, every request and every change applied, and the fault switches, all behind one
lock since the test's thread and the server's thread share them."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def drip_id_for(seed: str) -> str:
    """A stable 24-hex DRIP id (DRIP's ids are 24 hex characters)."""
    return hashlib.sha1(seed.encode()).hexdigest()[:24]


@dataclass
class FakeRealm:
    realm_id: str
    api_key: str
    realm_point_id: str
    balances: dict[str, int] = field(default_factory=dict)
    """Linked members: Discord id → balance in the realm point."""
    ghosts: dict[str, int] = field(default_factory=dict)
    """Ghost credentials: Discord ids no member connected yet → balance."""
    hits: deque = field(default_factory=deque)


@dataclass
class Logged:
    method: str
    path: str
    realm_id: str
    status: int
    applied: bool
    updates: int = 0
    body: Any = None
    at: float = 0.0
    query: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Applied:
    realm_id: str
    value: str
    amount: int
    initiator_id: str
    ghost: bool = False


class FakeDripState:
    """The fake's realms, request log and journal, and the faults queued for its next
    answers; the test's thread sets them up and reads them (`FakeDrip` serves them)."""

    def __init__(self, *, rate_limit: int = 1000, rate_window: float = 60.0) -> None:
        self.lock = threading.Lock()
        self.realms: dict[str, FakeRealm] = {}
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.clock: Callable[[], float] = time.time
        """The UNIX time the rate window is counted in (and `X-RateLimit-Reset` given on); a
        test moves its own (`tests/drip/conftest.py`, `WallClock`)."""
        self.latency = 0.0
        self.down = False
        self.atomic_batches = False
        self.hang_seconds = 30.0
        self.search_page_size: int | None = None
        """Force pages of this size in search answers (pagination tests)."""
        self._fail: list[tuple[int, int]] = []  # (times, status)
        self._apply_fail: list[tuple[int, int]] = []
        self._garble: list[tuple[int, bool]] = []
        self._garble_reads: list[tuple[int, bool]] = []
        self._storm: list[tuple[int, float]] = []
        self._lose: list[tuple[int, str]] = []
        self._hang: list[str | None] = []
        self._refused: dict[tuple[str, str], str] = {}
        self.log: list[Logged] = []
        self.journal: list[Applied] = []
        self.applied_batches: list[int] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- Set-up and inspection -----------------------------------------------------------

    def realm(self, realm_id: str, api_key: str, *, realm_point_id: str = "") -> FakeRealm:
        point = realm_point_id or drip_id_for(f"point:{realm_id}")
        with self.lock:
            return self.realms.setdefault(realm_id, FakeRealm(realm_id, api_key, point))

    def member(self, realm_id: str, user_id: int, balance: int = 0) -> None:
        """A realm member who connected Discord id `user_id`; their ghost credential, if any,
        is linked (its balance transferred), as DRIP does."""
        with self.lock:
            realm = self.realms[realm_id]
            ghost = realm.ghosts.pop(str(user_id), 0)
            realm.balances[str(user_id)] = balance + ghost

    def ghost_hold(self, realm_id: str, user_id: int, balance: int) -> None:
        """A ghost credential for Discord id `user_id` holding `balance` (credited before its
        owner joined the realm; docs/drip.md cites DRIP's credentials guide)."""
        with self.lock:
            self.realms[realm_id].ghosts[str(user_id)] = balance

    def leave(self, realm_id: str, user_id: int) -> None:
        with self.lock:
            self.realms[realm_id].balances.pop(str(user_id), None)

    def balance(self, realm_id: str, user_id: int) -> int | None:
        with self.lock:
            return self.realms[realm_id].balances.get(str(user_id))

    def ghost(self, realm_id: str, user_id: int) -> int | None:
        with self.lock:
            return self.realms[realm_id].ghosts.get(str(user_id))

    def total(self, realm_id: str) -> int:
        """Every point in the realm: members' and ghost credentials'."""
        with self.lock:
            realm = self.realms[realm_id]
            return sum(realm.balances.values()) + sum(realm.ghosts.values())

    def requests(self, method: str | None = None, endswith: str = "") -> list[Logged]:
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and r.path.endswith(endswith)
            ]

    def applied(self, realm_id: str | None = None) -> list[Applied]:
        with self.lock:
            return [a for a in self.journal if realm_id is None or a.realm_id == realm_id]

    # --- Faults ----------------------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """The next `times` requests are answered `status` and change nothing."""
        with self.lock:
            self._fail.append((times, status))

    def apply_then_fail(self, status: int = 500, times: int = 1) -> None:
        """The next `times` writes are applied, then answered `status` (a gateway or a crash
        after the commit)."""
        with self.lock:
            self._apply_fail.append((times, status))

    def garble_next(self, times: int = 1, *, reads: bool = False) -> None:
        """The next `times` writes are applied, then answered 200 with an unreadable body
        (`reads`: the next `times` member searches are answered so instead)."""
        with self.lock:
            (self._garble_reads if reads else self._garble).append((times, True))

    def storm_next(self, times: int, retry_after: float = 1.0) -> None:
        with self.lock:
            self._storm.append((times, retry_after))

    def lose_next(self, times: int = 1, mode: str = "hang") -> None:
        with self.lock:
            self._lose.append((times, mode))

    def hang_next(self, times: int = 1, method: str | None = None) -> None:
        """The next `times` requests (of `method`, when given) never answer and apply
        nothing."""
        with self.lock:
            self._hang += [method] * times

    def refuse(self, realm_id: str, user_id: int, reason: str = "credential is locked") -> None:
        """DRIP refuses every update of this Discord id (a validation error of DRIP's own)."""
        with self.lock:
            self._refused[(realm_id, str(user_id))] = reason

    def clear_faults(self) -> None:
        with self.lock:
            self._fail.clear()
            self._apply_fail.clear()
            self._garble.clear()
            self._garble_reads.clear()
            self._storm.clear()
            self._lose.clear()
            self._hang.clear()
            self.down = False
            self.latency = 0.0

    @staticmethod
    def _take(queue: list) -> Any:
        if not queue:
            return None
        times, value = queue[0]
        if times <= 1:
            queue.pop(0)
        else:
            queue[0] = (times - 1, value)
        return value
