"""A fake DRIP API for tests and demos (`manage.py dripfake`): a real aiohttp server on
127.0.0.1 speaking what DRIP's published reference says (docs/drip.md cites each page):

- `PATCH /api/v1/realms/{realmId}/credentials/balance?type=discord-id&value=…` body
  `{amount, realmPointId?, initiatorId?}` → `{credentialId, identifier, balance, realmPointId,
  linked}`. A Discord id that is no realm member's gets a **ghost credential** (`linked: false`)
  that holds the balance until the member connects.
- `PATCH /api/v1/realms/{realmId}/credentials/transaction` body `{updates: [{type, value,
  amount, realmPointId?, source?}], initiatorId?}` → `{success, results, errors}`; with
  `atomic_batches` a batch with one bad update is refused whole (400), nothing applied.
- `GET /api/v1/realms/{realmId}/members/search?type=discord-id&values=a,b&page=&limit=` →
  `{data: [{id, credentials: [{oauthProvider, oauthAccountId, …}], balances: [{balance,
  currencyId, currencyName, currencyEmoji}], …}], meta: {total, page, limit, totalPages}}`.
  Only linked members are found; ghost credentials are not members.
- Errors `{error, message, details, requestId, timestamp}`; 401 for a missing or wrong key,
  403 for a key of another realm, 400 for a realm id that is not 24 hex characters or a bad
  body, 422 for a debit below zero (`details: {balance, required}`).
- A sliding-window limit per realm (`rate_limit` per `rate_window` s, on `clock`) with
  `X-RateLimit-Limit/Remaining/Reset/Window` on every answer — `Reset` a UNIX timestamp — and
  429 with `Retry-After` (and `retryAfter` in the body).

Fault switches (thread-safe, for the test's thread): `latency`; `fail_next(status, times)` (5xx
without applying); `apply_then_fail(status, times)` (**applies, then answers 5xx**);
`garble_next(times, reads)` (a write applied, or a search, answered 200 with an unreadable
body); `down`; `storm_next(times,
retry_after)` (forced 429s); `lose_next(times, mode)` — applied but the answer is lost (`hang`
or `drop`); `hang_next(times)` never answers and applies nothing.

`journal`: every change applied, `(realm, discord id, amount, initiatorId)` — what DRIP's
activity log would show; `log` every request with its status."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import threading
import time
import uuid
from typing import Any

from aiohttp import web

from .fake_state import Applied, FakeDripState, FakeRealm, Logged, drip_id_for

API_PREFIX = "/api/v1"
RATE_HEADERS = web.RequestKey("rate_headers", dict)
REALM_ID_RE = re.compile(r"^[0-9a-fA-F]{24}$")
SEARCH_LIMIT_MAX = 100

__all__ = ["API_PREFIX", "REALM_ID_RE", "Applied", "FakeDrip", "FakeRealm", "Logged", "drip_id_for"]


class FakeDrip(FakeDripState):
    """The fake DRIP API served on 127.0.0.1 from its own thread (see the module docstring)."""

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
            loop.run_until_complete(self._shutdown())
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

    async def _shutdown(self) -> None:
        """Stop serving, then cancel and finish the handlers the short shutdown timeout left
        running (a request held on purpose): closed with the loop they would be destroyed
        pending whenever the garbage collector gets to them, an ERROR log line in whatever test
        runs then (the Sentry tests counted it as an event)."""
        if self._runner is None:  # never started
            return
        await self._runner.cleanup()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

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
        extra: dict | None = None,
    ) -> web.Response:
        body = {
            "error": error,
            "message": message,
            "details": details or {},
            "requestId": f"req_{uuid.uuid4().hex[:16]}",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        } | (extra or {})
        return web.json_response(body, status=status, headers=headers)

    async def _gate(self, request: web.Request) -> FakeRealm | web.Response:
        """Latency, outages, the realm id's form, auth and rate limits, in that order: the realm,
        or the refusal to send."""
        if self.latency:
            await asyncio.sleep(self.latency)
        realm_id = request.match_info["realm_id"]
        with self.lock:
            if self.down:
                return self._error(503, "ServiceUnavailable", "DRIP is down")
            status = self._take(self._fail)
            if status is not None:
                return self._error(status, "InternalServerError", "injected failure")
            storm = self._take(self._storm)
            if storm is not None:
                return self._error(
                    429,
                    "Rate limit exceeded",
                    f"Too many requests. Try again in {storm:g} seconds.",
                    headers={"Retry-After": f"{storm:g}"},
                    extra={"retryAfter": storm},
                )
            if not REALM_ID_RE.fullmatch(realm_id):
                return self._error(
                    400,
                    "ValidationError",
                    "Invalid request parameters",
                    {"field": "realmId", "issue": "must match ^[0-9a-fA-F]{24}$"},
                )
            auth = request.headers.get("Authorization", "")
            key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            realm = self.realms.get(realm_id)
            if realm is None or realm.api_key != key:
                if key and any(r.api_key == key for r in self.realms.values()):
                    return self._error(403, "Forbidden", "this key may not use that realm")
                return self._error(401, "Unauthorized", "Missing or invalid API key")
            now = wall = self.clock()
            while realm.hits and realm.hits[0] <= now - self.rate_window:
                realm.hits.popleft()
            headers = {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Window": f"{self.rate_window:g}",
            }
            if len(realm.hits) >= self.rate_limit:
                wait = realm.hits[0] + self.rate_window - now
                headers |= {
                    "Retry-After": str(max(1, math.ceil(wait))),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(wall + wait)),
                }
                return self._error(
                    429,
                    "Rate limit exceeded",
                    f"Too many requests. Try again in {math.ceil(wait)} seconds.",
                    headers=headers,
                    extra={"retryAfter": max(1, math.ceil(wait))},
                )
            realm.hits.append(now)
            reset = realm.hits[0] + self.rate_window - now
        request[RATE_HEADERS] = headers | {
            "X-RateLimit-Remaining": str(self.rate_limit - len(realm.hits)),
            "X-RateLimit-Reset": str(math.ceil(wall + reset)),
        }
        return realm

    async def _finish(self, request: web.Request, body: dict, applied: bool) -> web.StreamResponse:
        """Send `body`, unless a fault loses or spoils the answer after the change applied."""
        with self.lock:
            after = self._take(self._apply_fail) if applied else None
            garble = self._take(self._garble) if applied and after is None else None
            lose = self._take(self._lose) if applied and after is None and not garble else None
        if after is not None:
            return self._error(after, "InternalServerError", "upstream error after commit")
        if garble:
            return web.Response(
                status=200, body=b'{"credentialId": "cut sh', content_type="application/json"
            )
        if lose == "drop" and request.transport is not None:
            request.transport.close()
            await asyncio.sleep(0.05)
            return web.Response(status=500)
        if lose == "hang":
            await asyncio.sleep(self.hang_seconds)
        return web.json_response(body, headers=request.get(RATE_HEADERS))

    def _record(
        self, request: web.Request, status: int, applied: bool, updates: int = 0, body: Any = None
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
                    dict(request.query),
                )
            )

    async def _hang_check(self, request: web.Request) -> bool:
        with self.lock:
            if not self._hang or self._hang[0] not in (None, request.method):
                return False
            self._hang.pop(0)
        await asyncio.sleep(self.hang_seconds)
        return True

    def _point_ok(self, realm: FakeRealm, point: Any) -> bool:
        return point in (None, "", realm.realm_point_id)

    def _apply(self, realm: FakeRealm, value: str, amount: int, initiator: str) -> tuple[int, bool]:
        """Caller holds the lock and checked the balance. Returns (balance, linked)."""
        linked = value in realm.balances
        book = realm.balances if linked else realm.ghosts
        book[value] = book.get(value, 0) + amount
        self.journal.append(Applied(realm.realm_id, value, amount, initiator, ghost=not linked))
        return book[value], linked

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        realm = await self._gate(request)
        if isinstance(realm, web.Response):  # refused before anything is looked at
            self._record(request, realm.status, False)
            return realm
        if await self._hang_check(request):
            self._record(request, 0, False)
            return self._error(503, "ServiceUnavailable", "too late")
        value = request.query.get("value", "")
        if request.query.get("type") != "discord-id" or not value:
            self._record(request, 400, False)
            return self._error(
                400, "ValidationError", "Invalid request parameters", {"field": "type"}
            )
        try:
            body = await request.json()
            amount = body["amount"]
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise TypeError("amount")
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            self._record(request, 400, False)
            return self._error(
                400,
                "ValidationError",
                "Invalid request parameters",
                {"field": "amount", "issue": "Must be an integer"},
            )
        if not self._point_ok(realm, body.get("realmPointId")):
            self._record(request, 404, False, 1, body)
            return self._error(404, "NotFound", "realm point not found")
        with self.lock:
            current = realm.balances.get(value, realm.ghosts.get(value, 0))
            outcome: web.Response | dict[str, Any]
            if current + amount < 0:
                outcome = self._error(
                    422,
                    "InsufficientBalance",
                    "Insufficient balance",
                    {"balance": current, "required": -amount},
                )
            else:
                balance, linked = self._apply(
                    realm, value, amount, str(body.get("initiatorId") or "")
                )
                outcome = {
                    "credentialId": drip_id_for(f"cred:{realm.realm_id}:{value}"),
                    "identifier": value,
                    "balance": balance,
                    "realmPointId": realm.realm_point_id,
                    "linked": linked,
                }
        applied = isinstance(outcome, dict)
        self._record(request, 200 if applied else 422, applied, 1, body)
        if isinstance(outcome, web.Response):
            return outcome
        return await self._finish(request, outcome, applied=True)

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        realm = await self._gate(request)
        if isinstance(realm, web.Response):  # refused before anything is looked at
            self._record(request, realm.status, False)
            return realm
        if await self._hang_check(request):
            self._record(request, 0, False)
            return self._error(503, "ServiceUnavailable", "too late")
        try:
            body = await request.json()
            updates = list(body["updates"])
            for u in updates:
                if isinstance(u["amount"], bool) or not isinstance(u["amount"], int):
                    raise TypeError("amount")
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            self._record(request, 400, False)
            return self._error(
                400, "ValidationError", "Invalid request parameters", {"field": "updates"}
            )
        if not 1 <= len(updates) <= 100:
            self._record(request, 400, False, len(updates))
            return self._error(
                400, "ValidationError", "Invalid request parameters", {"field": "updates"}
            )
        initiator = str(body.get("initiatorId") or "")
        results, errors = [], []
        with self.lock:
            planned: dict[str, int] = {}

            def problem(u: dict) -> str | None:
                value = str(u.get("value") or "")
                if u.get("type") != "discord-id" or not value:
                    return "invalid identifier"
                if not self._point_ok(realm, u.get("realmPointId")):
                    return "realm point not found"
                if (realm.realm_id, value) in self._refused:
                    return self._refused[(realm.realm_id, value)]
                current = planned.get(value, realm.balances.get(value, realm.ghosts.get(value, 0)))
                if current + u["amount"] < 0:
                    return "insufficient balance"
                planned[value] = current + u["amount"]
                return None

            problems = [problem(u) for u in updates]
            if self.atomic_batches and any(problems):
                bad = next(i for i, p in enumerate(problems) if p)
                response = self._error(
                    400,
                    "ValidationError",
                    "Batch refused: an update failed; nothing was applied",
                    {"index": bad, "value": str(updates[bad].get("value")), "issue": problems[bad]},
                )
            else:
                response = None
                for u, p in zip(updates, problems, strict=True):
                    value = str(u.get("value") or "")
                    if p:
                        errors.append({"type": u.get("type"), "value": value, "error": p})
                        continue
                    balance, _ = self._apply(realm, value, u["amount"], initiator)
                    results.append(
                        {
                            "type": "discord-id",
                            "value": value,
                            "credentialId": drip_id_for(f"cred:{realm.realm_id}:{value}"),
                            "balance": balance,
                            "realmPointId": realm.realm_point_id,
                        }
                    )
                if results:
                    self.applied_batches.append(len(results))
        if response is not None:
            self._record(request, 400, False, len(updates), body)
            return response
        self._record(request, 200, bool(results), len(updates), body)
        answer = {"success": not errors, "results": results, "errors": errors}
        return await self._finish(request, answer, applied=bool(results))

    async def _search(self, request: web.Request) -> web.StreamResponse:
        realm = await self._gate(request)
        if isinstance(realm, web.Response):  # refused before anything is looked at
            self._record(request, realm.status, False)
            return realm
        if await self._hang_check(request):
            self._record(request, 0, False)
            return self._error(503, "ServiceUnavailable", "too late")
        with self.lock:
            garble = self._take(self._garble_reads)
        if garble:
            self._record(request, 200, False)
            return web.Response(
                status=200, body=b'{"data": [{"id"', content_type="application/json"
            )
        values = [v for v in request.query.get("values", "").split(",") if v]
        try:
            page = int(request.query.get("page", "1"))
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            page, limit = 0, 0
        if (
            request.query.get("type") != "discord-id"
            or not values
            or page < 1
            or not 1 <= limit <= SEARCH_LIMIT_MAX
        ):
            self._record(request, 400, False)
            return self._error(400, "ValidationError", "Invalid request parameters")
        limit = min(limit, self.search_page_size or limit)
        with self.lock:
            found = [
                {
                    "id": drip_id_for(f"account:{v}"),
                    "realmMemberId": drip_id_for(f"member:{realm.realm_id}:{v}"),
                    "username": f"member{v[-4:]}",
                    "displayName": f"Member {v[-4:]}",
                    "credentials": [
                        {
                            "format": "oauth",
                            "publicIdentifier": f"member{v[-4:]}",
                            "oauthProvider": "discord",
                            "oauthAccountId": v,
                            "oauthUsername": f"member{v[-4:]}",
                        }
                    ],
                    "balances": [
                        {
                            "balance": realm.balances[v],
                            "currencyId": realm.realm_point_id,
                            "currencyName": "Points",
                            "currencyEmoji": "💧",
                        }
                    ],
                }
                for v in dict.fromkeys(values)
                if v in realm.balances
            ]
        total_pages = max(1, math.ceil(len(found) / limit))
        data = found[(page - 1) * limit : page * limit]
        self._record(request, 200, False)
        meta = {"total": len(found), "page": page, "limit": limit, "totalPages": total_pages}
        return web.json_response({"data": data, "meta": meta}, headers=request.get(RATE_HEADERS))
