"""The soak's parts (bench/soak.py): its private servers, the bot process, the load it sends,
the markets' lifecycle, the faults and the dashboard sockets."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

ROOT = _common.ROOT
BASE_GUILD = 710_000_000_000_000_000
BASE_MEMBER = 810_000_000_000_000_000
MODERATOR = 820_000_000_000_000_001
CREATOR = 830_000_000_000_000_000  # + guild index: each guild's markets' creator (never trades)
GENERAL, ANNOUNCE = 444_444_444_444_445_000, 444_444_444_444_446_000  # + guild index
DATABASE = "soak"

# The mix of interactions (weights); a quote is followed by its Confirm click.
MIX = {
    "bet": 24,
    "bet_quote": 8,
    "sell": 8,
    "sell_quote": 3,
    "portfolio": 10,
    "leaderboard": 7,
    "history": 7,
    "autocomplete": 15,
    "daily": 6,
    "tip": 6,
}


# --- Private servers ------------------------------------------------------------------------


class Servers:
    """A private PostgreSQL (the project's schema copied from the benchmarks' template) and a
    private Redis behind a fault proxy, so the soak may restart and hang them (tests/faults)."""

    def __init__(self) -> None:
        from tests.faults.servers import postgres_bin

        self.bin_dir = postgres_bin()
        if self.bin_dir is None:
            raise _common.BenchError("the soak needs PostgreSQL's server binaries (postgresql)")
        if shutil.which("redis-server") is None:
            raise _common.BenchError("the soak needs redis-server (apt-get install redis-server)")
        self.pg: Any = None
        self.redis: Any = None
        self.redis_proxy: Any = None

    def start(self) -> Servers:
        import psycopg

        from tests.faults.proxy import FaultProxy
        from tests.faults.servers import PrivatePostgres, PrivateRedis

        self.pg = PrivatePostgres(self.bin_dir).init().start()
        with psycopg.connect(self.pg.dsn(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        self._copy_schema()
        self.redis = PrivateRedis().start()
        self.redis_proxy = FaultProxy("127.0.0.1", self.redis.port, postgres=False).start()
        return self

    def _copy_schema(self) -> None:
        """The migrated template of the shared server, dumped into the private one (seconds;
        migrating it would take a minute on a busy machine)."""
        _common.prepare_template()
        args, env = _common.pg_args(_common.database_url("template"))
        name = f"{_common.base_name()}_bench_template"
        dump = subprocess.run(
            [str(self.bin_dir / "pg_dump"), *args, "-d", name, "--no-owner", "--no-acl"],
            env=env,
            capture_output=True,
        )
        if dump.returncode:
            raise _common.BenchError(f"pg_dump of {name} failed: {dump.stderr.decode()[-500:]}")
        load = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
             "postgres", "-d", DATABASE, "-q", "-v", "ON_ERROR_STOP=1"],
            input=dump.stdout,
            capture_output=True,
        )  # fmt: skip
        if load.returncode:
            raise _common.BenchError(f"loading the schema failed: {load.stderr.decode()[-500:]}")

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg.port}/{DATABASE}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_proxy.port}/0"

    def restart_postgres(self) -> None:
        """A fast shutdown and a start on the same port (every connection is cut)."""
        self.pg.stop()
        self.pg.start()

    def stop(self) -> None:
        for part in (self.redis_proxy, self.redis):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop() if part is self.redis_proxy else part.cleanup()
        if self.pg is not None:
            self.pg.cleanup()


# --- The bot process ------------------------------------------------------------------------


def bot_start(fake_base: str, servers: Servers, log: Path) -> subprocess.Popen:
    """`manage.py runbot` as in production (no DEBUG, Redis cache and channel layer), logged in
    against the fake Discord's REST API and gateway."""
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "DJANGO_SECRET_KEY": "soak-only-" + _common.RUN,
        "DISCORD_TOKEN": "fake-token",
        "DISCORD_API_BASE": fake_base,
        "DISCORD_GATEWAY_URL": fake_base.replace("http://", "ws://").replace(
            "/api/v10", "/gateway"
        ),
        "DISCORD_NOTIFY_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("DJANGO_TESTING", "DJANGO_DEBUG"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "manage.py", "runbot", "--no-sync"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def bot_stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), NaN when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --- Django calls from the driver (retried through the faults) -------------------------------


async def db(call: Callable[..., Any], /, *, patience: float = 90.0, **kwargs: Any) -> Any:
    """`call(**kwargs)` in a thread with a fresh connection; a connection error (PostgreSQL
    restarting) is retried with the same arguments — the services are idempotent by key."""
    from django.db import InterfaceError, OperationalError, connection

    def run() -> Any:
        try:
            return call(**kwargs)
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    deadline = time.monotonic() + patience
    while True:
        try:
            return await asyncio.to_thread(run)
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


# --- The load -------------------------------------------------------------------------------


@dataclass
class Sent:
    """One interaction the soak sent, and what it expects of it."""

    kind: str
    payload: dict
    at: float  # seconds since the soak's start
    fault: str = ""
    trade_key: str | None = None  # the trade it makes when it says so
    quote: Sent | None = None  # a Confirm click: its quote

    @property
    def token(self) -> str:
        return self.payload["token"]


@dataclass
class Market:
    guild: int
    id: int
    amm: bool
    open: bool = True


@dataclass
class Load:
    """Sends the mix at `rate` a second from random members; quotes get their Confirm click."""

    fake: Any
    payloads: Any  # tests.discordbot.harness.Harness without a bot
    members: dict[int, list[Any]]  # guild → Member
    markets: list[Market]
    rate: float
    started: float
    fault: Callable[[], str]
    sent: list[Sent] = field(default_factory=list)
    holdings: dict[tuple[int, int], int] = field(default_factory=dict)  # (member, market) → outcome
    random: random.Random = field(default_factory=lambda: random.Random(21))
    clicks: set[asyncio.Task] = field(default_factory=set)

    def _send(self, kind: str, payload: dict, **extra: Any) -> Sent:
        sent = Sent(kind, payload, time.monotonic() - self.started, self.fault(), **extra)
        self.sent.append(sent)
        self.fake.dispatch("INTERACTION_CREATE", payload)
        return sent

    def _open(self, guild: int, *, amm: bool = False) -> Market | None:
        found = [m for m in self.markets if m.guild == guild and m.open and (m.amm or not amm)]
        return self.random.choice(found) if found else None

    def one(self) -> None:
        kinds, weights = zip(*MIX.items(), strict=True)
        kind = self.random.choices(kinds, weights)[0]
        guild = self.random.choice(list(self.members))
        member = self.random.choice(self.members[guild])
        h = self.payloads
        h.guild_id, h.channel_id = guild, GENERAL + (guild - BASE_GUILD)
        if kind.startswith("bet"):
            market = self._open(guild)
            if market is None:
                return
            outcome = self.random.randint(1, 2)
            quote = kind == "bet_quote"
            payload = h.command("bet", member, market=str(market.id), outcome=str(outcome),
                                amount=self.random.choice([5, 10, 20]), confirm=quote)  # fmt: skip
            self.holdings[(member.id, market.id)] = outcome
            sent = self._send(kind, payload, trade_key=None if quote else key(payload))
            if quote:
                self._confirm_later(sent, member, guild)
        elif kind.startswith("sell"):
            held = [(m, o) for (who, m), o in self.holdings.items() if who == member.id]
            market = next((m for m in self.markets if held and m.id == held[0][0]), None)
            if market is None or not market.amm or not market.open:
                market = self._open(guild, amm=True)
                if market is None:
                    return
                held = [(market.id, 1)]
            quote = kind == "sell_quote"
            payload = h.command("sell", member, market=str(market.id), outcome=str(held[0][1]),
                                shares="all", confirm=quote)  # fmt: skip
            sent = self._send(kind, payload, trade_key=None if quote else key(payload))
            if quote:
                self._confirm_later(sent, member, guild)
        elif kind == "autocomplete":
            self._send(kind, h.autocomplete("bet", member, "market", market="Soak"))
        elif kind == "tip":
            other = self.random.choice(self.members[guild])
            if other.id != member.id:
                self._send(kind, h.command("tip", member, member=other, amount=5))
        else:
            self._send(kind, h.command(kind, member))

    def _confirm_later(self, quote: Sent, member: Any, guild: int) -> None:
        task = asyncio.ensure_future(self._confirm(quote, member, guild))
        self.clicks.add(task)
        task.add_done_callback(self.clicks.discard)

    async def _confirm(self, quote: Sent, member: Any, guild: int) -> None:
        """The member reads the quote (about a second) and clicks Confirm on it."""
        from tests.discordbot.fake_discord import LOADING
        from tests.discordbot.harness import buttons

        await asyncio.sleep(1.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = shown_message(self.fake, quote.token)
            answered = message is not None and not int(message.get("flags") or 0) & LOADING
            if answered and not any(b.get("label") == "Confirm" for b in buttons(message)):
                return  # refused (market closed, nothing to sell): nothing to confirm
            if answered:
                h = self.payloads
                h.guild_id, h.channel_id = guild, GENERAL + (guild - BASE_GUILD)
                try:
                    payload = h.click(message, member, label="Confirm")
                except AssertionError:  # disabled: the quote was answered otherwise
                    return
                self._send("confirm", payload, trade_key=f"{key(quote.payload)}:confirm",
                           quote=quote)  # fmt: skip
                return
            await asyncio.sleep(0.5)

    async def run(self, until: float) -> None:
        """Send at `rate` a second (evenly spaced, catching up after a stall) until `until`."""
        count = itertools.count()
        while (now := time.monotonic()) < until:
            due = self.started + next(count) / self.rate
            if due > now:
                await asyncio.sleep(due - now)
            self.one()


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:90]


def ending(task: Any) -> str | None:
    """How a finished task ended: the name of its exception, "closed", or None if running."""
    if not task.done():
        return None
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return f"{type(exc).__name__}: {first_line(exc)}" if exc else "closed"


def key(payload: dict) -> str:
    return f"discord:{payload['id']}"


def shown_message(fake: Any, token: str) -> dict | None:
    """The message that answers the interaction now: its last follow-up, else its original."""
    with fake.lock:
        state = fake.interactions.get(token)
        if state is None:
            return None
        for message_id in reversed(state.followups):
            if (message := fake.messages.get(int(message_id))) is not None:
                return message
        if state.original_id is not None and not state.original_deleted:
            return fake.messages.get(int(state.original_id))
    return None


# --- The markets' lifecycle -----------------------------------------------------------------


async def lifecycle(markets: list[Market], every: float, until: float, log: list[str]) -> None:
    """Every `every` seconds one step of one market's end: closed, proposed, disputed (every
    other market, by a member who traded), confirmed (settled), by a moderator; the bot's
    notifier posts and DMs each step."""
    from betting.models import Trade
    from markets.services import (
        market_close,
        market_dispute,
        market_proposal_confirm,
        market_propose,
    )
    from points.rules import Actor

    mod = Actor.member(MODERATOR, manage_guild=True)
    order = sorted(markets, key=lambda m: (m.id % 5, m.id))  # every guild and mechanism early

    def trader(market_id: int) -> int | None:
        return Trade.objects.filter(market_id=market_id).values_list("user_id", flat=True).first()

    for n, market in enumerate(order):
        steps = (
            ["close", "propose", "dispute", "confirm"] if n % 2 else ["close", "propose", "confirm"]
        )
        for step in steps:
            if time.monotonic() + every > until:
                return
            await asyncio.sleep(every)
            k = f"soak:{_common.RUN}:{step}:{market.id}"
            try:
                if step == "close":
                    market.open = False
                    await db(market_close, market_id=market.id, actor=mod, idempotency_key=k)
                elif step == "propose":
                    await db(market_propose, market_id=market.id, outcome=1, actor=mod,
                             idempotency_key=k)  # fmt: skip
                elif step == "dispute":
                    who = await db(trader, market_id=market.id)
                    if who is None:
                        continue
                    await db(market_dispute, market_id=market.id, actor=Actor.member(who),
                             reason="The soak disputes it", idempotency_key=k)  # fmt: skip
                else:
                    await db(market_proposal_confirm, market_id=market.id, actor=mod,
                             reason="The soak confirms it", idempotency_key=k)  # fmt: skip
                log.append(f"{step} #{market.id}")
            except Exception as exc:  # a refusal is reported, the soak goes on
                log.append(f"{step} #{market.id} FAILED: {type(exc).__name__}: {exc}"[:200])


# --- The dashboard sockets ------------------------------------------------------------------


@dataclass
class Sockets:
    """Staff dashboard WebSockets driven in this process (a communicator on the project's ASGI
    app and channel layer, as daphne runs it): each replays, then counts the live events."""

    n: int
    received: list[list[int]] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    communicators: list[Any] = field(default_factory=list)
    after: int = 0
    cookie: bytes = b""
    refusals: collections.Counter = field(default_factory=collections.Counter)
    endings: collections.Counter = field(default_factory=collections.Counter)

    async def open(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.test import Client

        from markets.models import MarketEvent

        def cookie() -> bytes:
            user, _ = get_user_model().objects.get_or_create(
                username="soak-staff", defaults={"is_staff": True}
            )
            user.groups.add(Group.objects.get(name="Viewers"))
            browser = Client()
            browser.force_login(user)
            return f"sessionid={browser.cookies['sessionid'].value}".encode()

        self.cookie = await db(cookie)
        self.after = await db(
            lambda: MarketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        )
        for _ in range(self.n):
            self.received.append([])
            ws = await self._connect(self.after)
            self.tasks.append(asyncio.ensure_future(self._listen(ws, self.received[-1])))

    async def _connect(self, after: int) -> Any:
        from config.asgi import application
        from tests.dashboard.live import LiveWebsocketCommunicator

        while True:
            # Not channels' WebsocketCommunicator: it switches Django's connection clean-up off
            # for the whole process while a socket waits, which kept one dead connection for
            # every consumer after the PostgreSQL restart (tests/dashboard/live.py).
            ws = LiveWebsocketCommunicator(
                application,
                "/ws/dashboard/",
                headers=[(b"host", b"127.0.0.1"), (b"cookie", self.cookie),
                         (b"origin", b"http://127.0.0.1")],
            )  # fmt: skip
            try:
                connected, _ = await ws.connect(timeout=30)
                if connected:
                    await ws.send_json_to({"type": "replay", "after": after})
                    self.communicators.append(ws)
                    return ws
                self.refusals["refused"] += 1
            except Exception as exc:  # the consumer raised while connecting
                self.refusals[f"{type(exc).__name__}: {first_line(exc)}"] += 1
            await asyncio.sleep(1.0)

    async def _listen(self, ws: Any, into: list[int]) -> None:
        """Count live events. When the consumer ends (it closed the socket, or it raised: a
        browser then sees the socket close), reconnect and replay from the last event seen, as
        the page's script does. The communicator only notices a crashed consumer when a receive
        times out, so the receive races the application itself."""
        while True:
            receive = asyncio.ensure_future(ws.receive_json_from(timeout=86_400))
            try:
                await asyncio.wait({receive, ws.future}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                receive.cancel()
                return
            if receive.done() and not receive.exception():
                message = receive.result()
                if message.get("type") == "market.event" and "id" in message:
                    into.append(int(message["id"]))
                continue
            receive.cancel()
            self.endings[ending(ws.future) or ending(receive) or "closed"] += 1
            await asyncio.sleep(1.0)
            ws = await self._connect(max(into, default=self.after))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ws in self.communicators:
            with contextlib.suppress(Exception):
                await ws.disconnect(timeout=5)
