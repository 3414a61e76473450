"""A fake DRIP API for tests and demos (`manage.py dripfake`): a real aiohttp server on
127.0.0.1 speaking the endpoints of `drip.client` with DRIP's shapes.

- Realms with an API key, a realm point id and members' balances (Discord id → points); a member
  not in the realm is a 404, a debit below zero a 422 with the balance in `details`.
- A wrong key is a 401; a key of another realm a 403.
- Per-realm sliding-window rate limit (`rate_limit`, `rate_window`): 429 with `Retry-After` and
  `X-RateLimit-Limit/Remaining/Reset` on every answer.
- `atomic_batches`: a batch with one bad update fails whole (404/422), like DRIP's member batch
  endpoint ("if any update fails, the entire batch will fail"); by default a batch answers per
  update (`results` and `errors`).
- Fault switches (thread-safe, for the test's thread): `latency`; `fail_next(status, times)`
  (5xx without applying); `down` (every request 503); `storm_next(times, retry_after)` (forced
  429s); `lose_next(times, mode)` — *applied but the answer is lost*: `mode="hang"` applies then
  never answers in time, `mode="drop"` applies then closes the connection; `hang_next(times)`
  never answers and applies nothing.
- `log`: every request with its status and whether it was applied; `applied_batches` the sizes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_PREFIX = "/api/v1"
RATE_HEADERS = web.RequestKey("rate_headers", dict)


@dataclass
class FakeRealm:
    realm_id: str
    api_key: str
    realm_point_id: str = "pts"
    balances: dict[str, int] = field(default_factory=dict)
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


class FakeDrip:
    def __init__(self, *, rate_limit: int = 1000, rate_window: float = 60.0) -> None:
        self.lock = threading.Lock()
        self.realms: dict[str, FakeRealm] = {}
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.latency = 0.0
        self.down = False
        self.atomic_batches = False
        self.hang_seconds = 30.0
        self._fail: list[tuple[int, int]] = []  # (times, status)
        self._storm: list[tuple[int, float]] = []
        self._lose: list[tuple[int, str]] = []
        self._hang = 0
        self.log: list[Logged] = []
        self.applied_batches: list[int] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- Set-up and inspection -----------------------------------------------------------

    def realm(self, realm_id: str, api_key: str, *, realm_point_id: str = "pts") -> FakeRealm:
        with self.lock:
            found = self.realms.setdefault(realm_id, FakeRealm(realm_id, api_key, realm_point_id))
            return found

    def member(self, realm_id: str, user_id: int, balance: int = 0) -> None:
        with self.lock:
            self.realms[realm_id].balances[str(user_id)] = balance

    def balance(self, realm_id: str, user_id: int) -> int | None:
        with self.lock:
            return self.realms[realm_id].balances.get(str(user_id))

    def total(self, realm_id: str) -> int:
        with self.lock:
            return sum(self.realms[realm_id].balances.values())

    def requests(self, method: str | None = None, endswith: str = "") -> list[Logged]:
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and r.path.endswith(endswith)
            ]

    # --- Faults ----------------------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        with self.lock:
            self._fail.append((times, status))

    def storm_next(self, times: int, retry_after: float = 1.0) -> None:
        with self.lock:
            self._storm.append((times, retry_after))

    def lose_next(self, times: int = 1, mode: str = "hang") -> None:
        with self.lock:
            self._lose.append((times, mode))

    def hang_next(self, times: int = 1) -> None:
        with self.lock:
            self._hang += times

    def clear_faults(self) -> None:
        with self.lock:
            self._fail.clear()
            self._storm.clear()
            self._lose.clear()
            self._hang = 0
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

    # --- Lifecycle -------------------------------------------------------------------------

    def start(self, *, port: int = 0) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-drip", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self.base_url

    async def _serve(self, port: int) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{API_PREFIX}"

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def app(self) -> web.Application:
        app = web.Application()
        base = API_PREFIX + "/realms/{realm_id}"
        app.router.add_patch(base + "/credentials/balance", self._balance)
        app.router.add_patch(base + "/credentials/transaction", self._batch)
        app.router.add_get(base + "/members/search", self._search)
        return app

    # --- Handlers ----------------------------------------------------------------------------

    def _error(
        self,
        status: int,
        error: str,
        message: str,
        details: dict | None = None,
        headers: dict | None = None,
    ) -> web.Response:
        body = {
            "error": error,
            "message": message,
            "details": details or {},
            "requestId": uuid.uuid4().hex,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }
        return web.json_response(body, status=status, headers=headers)

    async def _gate(self, request: web.Request) -> tuple[FakeRealm | None, web.Response | None]:
        """Latency, outages, auth and rate limits, in that order. Returns the realm or a
        response to send instead."""
        if self.latency:
            await asyncio.sleep(self.latency)
        realm_id = request.match_info["realm_id"]
        with self.lock:
            if self.down:
                return None, self._error(503, "Service Unavailable", "DRIP is down")
            status = self._take(self._fail)
            if status is not None:
                return None, self._error(status, "Server Error", "injected failure")
            storm = self._take(self._storm)
            if storm is not None:
                return None, self._error(
                    429, "Too Many Requests", "rate limited", headers={"Retry-After": str(storm)}
                )
            auth = request.headers.get("Authorization", "")
            key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            realm = self.realms.get(realm_id)
            if realm is None or realm.api_key != key:
                other = any(r.api_key == key for r in self.realms.values())
                if other:
                    return None, self._error(403, "Forbidden", "this key may not use that realm")
                return None, self._error(401, "Unauthorized", "invalid API key")
            now = time.monotonic()
            while realm.hits and realm.hits[0] <= now - self.rate_window:
                realm.hits.popleft()
            headers = {"X-RateLimit-Limit": str(self.rate_limit)}
            if len(realm.hits) >= self.rate_limit:
                wait = realm.hits[0] + self.rate_window - now
                headers |= {
                    "Retry-After": str(max(1, int(wait + 0.999))),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{wait:.3f}",
                }
                return None, self._error(429, "Too Many Requests", "rate limit", headers=headers)
            realm.hits.append(now)
        request[RATE_HEADERS] = headers | {
            "X-RateLimit-Remaining": str(self.rate_limit - len(realm.hits)),
            "X-RateLimit-Reset": f"{self.rate_window:.3f}",
        }
        return realm, None

    async def _finish(self, request: web.Request, body: dict, applied: bool) -> web.StreamResponse:
        """Send `body`, unless a fault loses the answer after the change was applied."""
        with self.lock:
            lose = self._take(self._lose) if applied else None
        if lose == "drop":
            request.transport.close()
            await asyncio.sleep(0.05)
            return web.Response(status=500)
        if lose == "hang":
            await asyncio.sleep(self.hang_seconds)
        return web.json_response(body, headers=request.get(RATE_HEADERS))

    def _record(
        self,
        request: web.Request,
        status: int,
        applied: bool,
        updates: int = 0,
        body: Any = None,
    ) -> None:
        with self.lock:
            self.log.append(
                Logged(
                    request.method,
                    request.path,
                    request.match_info.get("realm_id", ""),
                    status,
                    applied,
                    updates,
                    body,
                    time.monotonic(),
                )
            )

    async def _hang_check(self) -> bool:
        with self.lock:
            if self._hang <= 0:
                return False
            self._hang -= 1
        await asyncio.sleep(self.hang_seconds)
        return True

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        realm, refusal = await self._gate(request)
        if refusal is not None:
            self._record(request, refusal.status, False)
            return refusal
        if await self._hang_check():
            self._record(request, 0, False)
            return self._error(503, "Service Unavailable", "too late")
        if request.query.get("type") != "discord-id":
            self._record(request, 400, False)
            return self._error(400, "Bad Request", "type must be discord-id")
        user = request.query.get("value", "")
        try:
            body = await request.json()
            amount = int(body["amount"])
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            self._record(request, 400, False)
            return self._error(400, "Bad Request", "amount must be an integer")
        with self.lock:
            current = realm.balances.get(user)
            if current is None:
                status, response = 404, self._error(404, "Not Found", "credential not found")
            elif current + amount < 0:
                status, response = (
                    422,
                    self._error(
                        422,
                        "Unprocessable Entity",
                        "insufficient balance",
                        {"balance": current, "required": -amount},
                    ),
                )
            else:
                realm.balances[user] = current + amount
                status, response = 200, None
                result = {
                    "credentialId": f"cred-{user}",
                    "identifier": {"type": "discord-id", "value": user},
                    "balance": realm.balances[user],
                    "realmPointId": body.get("realmPointId") or realm.realm_point_id,
                    "linked": True,
                }
        self._record(request, status, status == 200, 1, body)
        if response is not None:
            return response
        return await self._finish(request, result, applied=True)

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        realm, refusal = await self._gate(request)
        if refusal is not None:
            self._record(request, refusal.status, False)
            return refusal
        if await self._hang_check():
            self._record(request, 0, False)
            return self._error(503, "Service Unavailable", "too late")
        try:
            body = await request.json()
            updates = list(body["updates"])
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            self._record(request, 400, False)
            return self._error(400, "Bad Request", "updates must be a list")
        if not 1 <= len(updates) <= 100:
            self._record(request, 400, False, len(updates))
            return self._error(400, "Bad Request", "1–100 updates per request")
        results, errors = [], []
        refused = 0
        with self.lock:
            if self.atomic_batches:  # DRIP's all-or-nothing flavour: one bad update fails all
                for u in updates:
                    current = realm.balances.get(str(u.get("value")))
                    if current is None or current + int(u.get("amount", 0)) < 0:
                        refused = 404 if current is None else 422
                        break
        if refused:
            self._record(request, refused, False, len(updates), body)
            return self._error(refused, "Batch Failed", "an update failed")
        with self.lock:
            for u in updates:
                value, amount = str(u.get("value")), int(u.get("amount", 0))
                current = realm.balances.get(value)
                if u.get("type") != "discord-id" or current is None:
                    errors.append({"type": u.get("type"), "value": value, "error": "not found"})
                elif current + amount < 0:
                    errors.append(
                        {"type": "discord-id", "value": value, "error": "insufficient balance"}
                    )
                else:
                    realm.balances[value] = current + amount
                    results.append(
                        {
                            "type": "discord-id",
                            "value": value,
                            "credentialId": f"cred-{value}",
                            "balance": realm.balances[value],
                            "realmPointId": u.get("realmPointId") or realm.realm_point_id,
                        }
                    )
            self.applied_batches.append(len(updates))
        self._record(request, 200, bool(results), len(updates), body)
        answer = {"success": not errors, "results": results, "errors": errors}
        return await self._finish(request, answer, applied=bool(results))

    async def _search(self, request: web.Request) -> web.StreamResponse:
        realm, refusal = await self._gate(request)
        if refusal is not None:
            self._record(request, refusal.status, False)
            return refusal
        if await self._hang_check():
            self._record(request, 0, False)
            return self._error(503, "Service Unavailable", "too late")
        values = [v for v in request.query.get("values", "").split(",") if v]
        if request.query.get("type") != "discord-id" or not 1 <= len(values) <= 50:
            self._record(request, 400, False)
            return self._error(400, "Bad Request", "type=discord-id and 1–50 values")
        with self.lock:
            data = [
                {
                    "id": f"drip-{v}",
                    "discordId": v,
                    "balances": [
                        {
                            "balance": realm.balances[v],
                            "currencyId": realm.realm_point_id,
                            "realmPointId": realm.realm_point_id,
                        }
                    ],
                }
                for v in values
                if v in realm.balances
            ]
        self._record(request, 200, False)
        return web.json_response(
            {"data": data, "meta": {"total": len(data)}}, headers=request.get(RATE_HEADERS)
        )
