"""Commit-to-delivery latency of dashboard events: 200 staff WebSockets on a real daphne server,
trades placed through the services, p50/p99 with the in-memory and with the Redis channel layer.

    .venv/bin/python bench/ws_latency.py [--clients 200] [--trades 100] [--rate 20]
                                         [--layers memory redis redis-pubsub] [--smoke]

For each layer a fresh process serves the project's ASGI app with daphne on a free port on
127.0.0.1 (a Twisted reactor runs once per process), and a second process opens `--clients`
WebSockets with a staff session cookie and the page's protocol (replay, then live). The server
process places `--trades` bets, `--rate` per second, through `betting.services.bet_place` on the
server's event loop (as the in-process bot does). The time of each event's on-commit hook is the
start; a client receiving the event is the end; both read the same wall clock. Every client must
receive every trade: a missing delivery is reported, not hidden (and fails the run). The staff
user is a member of the Viewers group, as a real dashboard viewer is.

Database: a fresh `<base>_bench_ws` beside BENCH_DATABASE_URL / DATABASE_URL; Redis:
BENCH_REDIS_URL / REDIS_URL with a channel prefix of the run's own (bench/_common.py); without
one the Redis layers are skipped. `redis` is the layer the project ships (channels_redis core,
as in config/settings.py); `redis-pubsub` is channels_redis' pub/sub layer, measured for
comparison only. The in-memory layer's p99 is the baseline of the Redis layers' figures.
`--smoke`: 5 clients, 5 trades; fails on a lost delivery or an unclean ledger audit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

import _common

ROOT = _common.ROOT


# --- Clients (their own process) ------------------------------------------------------------


async def _clients(url: str, cookie: str, n: int, after: int, expected: int, ready, results):
    import aiohttp

    received: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    done = asyncio.Event()
    finished = 0
    retries = 0

    async def one(i: int, session: aiohttp.ClientSession, connected: asyncio.Event) -> None:
        nonlocal finished, retries
        headers = {"Cookie": cookie, "Origin": url.replace("ws://", "http://").split("/ws/")[0]}
        last: Exception | None = None
        for attempt in range(6):
            try:
                ws = await session.ws_connect(url, headers=headers, max_msg_size=0)
                break
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
                last = exc
                # A busy server's accept queue overflowed: the page reconnects, as the
                # dashboard's script does. Only the opening is retried, never a delivery.
                retries += 1
                await asyncio.sleep(0.2 * 2**attempt)
        else:
            raise ConnectionError(f"client {i} could not connect: {last!r}")
        async with ws:
            await ws.send_json({"type": "replay", "after": after})
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("type") == "replayed":
                    connected.set()
                elif data.get("type") == "market.event" and data.get("event") == "trade":
                    received[i].append((data["id"], time.time()))
                    if len(received[i]) == expected:
                        finished += 1
                        if finished == n:
                            done.set()
                        return

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        flags = [asyncio.Event() for _ in range(n)]
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one(i, session, flags[i])))
            if i % 20 == 19:
                # A ramp, as real pages arrive: the next 20 once these are in (200 handshakes at
                # once outlast daphne's 5 s handshake timeout on a busy machine).
                await asyncio.wait_for(
                    asyncio.gather(*(f.wait() for f in flags[i - 19 : i + 1])), timeout=60
                )
        await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), timeout=120)
        ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=60 + expected)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    results.put((received, retries))


def client_process(url, cookie, n, after, expected, ready, results) -> None:
    asyncio.run(_clients(url, cookie, n, after, expected, ready, results))


# --- Server, trades and measurement (one process per layer) ---------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_layer(layer: str, clients: int, trades: int, rate: float) -> dict:
    redis_url = _common.redis_url()
    database = _common.database_url("ws")
    _common.django_setup(database, redis=redis_url if layer == "redis" else None)
    from django.conf import settings

    if layer == "redis":
        # Exactly the layer config/settings.py builds from REDIS_URL, on a prefix of our own.
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"pmbench{uuid.uuid4().hex[:8]}"
    elif layer == "redis-pubsub":
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [redis_url], "prefix": f"pmbench{uuid.uuid4().hex[:8]}"},
            }
        }
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    from channels.db import database_sync_to_async
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from twisted.internet import reactor

    from betting import services as betting_services
    from config.asgi import application
    from markets import realtime, services
    from markets.models import MarketEvent
    from points.audit import ledger_audit
    from points.rules import SYSTEM

    run = uuid.uuid4().hex[:8]
    guild = 800_000_000_000_000_000 + int(run, 16) % 1_000_000_000
    user, _ = get_user_model().objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True}
    )
    user.groups.add(Group.objects.get(name="Viewers"))  # dashboard.view_dashboard
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    market = services.market_create(
        guild_id=guild,
        creator_id=guild + 1,
        question="Benchmark: does the dashboard keep up?",
        outcomes=["Yes", "No", "Maybe"],
        duration="1d",
        liquidity=100_000,
        idempotency_key=f"bench:{run}:market",
        actor=SYSTEM,
    )
    after = MarketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    # The on-commit hook is where latency starts.
    committed: dict[int, float] = {}
    publish = realtime.event_publish

    def timed_publish(event):
        committed[event.pk] = time.time()
        return publish(event)

    realtime.event_publish = timed_publish

    port = free_port()
    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=port),
        signal_handlers=False,
        verbosity=0,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    loop = reactor._asyncioEventloop

    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    url = f"ws://127.0.0.1:{port}/ws/dashboard/"
    proc = ctx.Process(
        target=client_process, args=(url, cookie, clients, after, trades, ready, results)
    )
    connect_started = time.time()
    proc.start()
    if not ready.wait(timeout=150):
        proc.kill()
        raise SystemExit(f"{layer}: the {clients} clients did not all connect")
    connect_seconds = time.time() - connect_started

    place = database_sync_to_async(betting_services.bet_place)
    started = time.time()
    for k in range(trades):
        future = asyncio.run_coroutine_threadsafe(
            place(
                market_id=market.pk,
                user_id=guild + 10 + k % 50,
                outcome=k % 3,
                amount=10,
                idempotency_key=f"bench:{run}:{k}",
            ),
            loop,
        )
        future.result(timeout=30)
        delay = started + (k + 1) / rate - time.time()
        if delay > 0:
            time.sleep(delay)
    received, retries = results.get(timeout=120 + trades)
    proc.join(timeout=30)
    reactor.callFromThread(reactor.stop)
    audit = ledger_audit()

    latencies = [
        (at - committed[event_id]) * 1000
        for per_client in received
        for event_id, at in per_client
        if event_id in committed
    ]
    delivered = sum(len(r) for r in received)
    short = sorted(len(r) for r in received if len(r) < trades)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else []
    return {
        "layer": layer,
        "clients": clients,
        "trades": trades,
        "rate": rate,
        "deliveries": delivered,
        "expected": clients * trades,
        "connect_s": round(connect_seconds, 2),
        "connect_retries": retries,
        "short_clients": short[:20],
        "p50_ms": round(q[49], 2) if q else None,
        "p90_ms": round(q[89], 2) if q else None,
        "p99_ms": round(q[98], 2) if q else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
        "database": urlparse(database).scheme,
        "audit_ok": audit.ok,
        "audit": audit.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--trades", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="trades per second")
    parser.add_argument(
        "--layers",
        nargs="+",
        default=["memory", "redis"],
        choices=["memory", "redis", "redis-pubsub"],
    )
    parser.add_argument("--smoke", action="store_true", help="toy size: 5 clients, 5 trades")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.trades, args.rate = 5, 5, 50.0

    if args.one:
        print("RESULT " + json.dumps(run_layer(args.one, args.clients, args.trades, args.rate)))
        return 0

    layers = list(args.layers)
    if _common.redis_url() is None:
        skipped = [layer for layer in layers if layer.startswith("redis")]
        if skipped:
            print(f"skipped {', '.join(skipped)}: no BENCH_REDIS_URL or REDIS_URL")
        layers = [layer for layer in layers if not layer.startswith("redis")]
    _common.fresh_database("ws")
    rows = []
    for layer in layers:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                layer,
                "--clients",
                str(args.clients),
                "--trades",
                str(args.trades),
                "--rate",
                str(args.rate),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.stderr.write(out.stdout[-2000:] + out.stderr[-4000:])
            raise SystemExit(f"{layer}: the benchmark process failed")
        rows.append(json.loads(line[len("RESULT ") :]))

    print(
        f"Commit-to-delivery latency, {args.clients} staff WebSockets on daphne, "
        f"{args.trades} trades at {args.rate:g}/s ({rows[0]['database']}):"
    )
    print(
        f"{'layer':<12} {'delivered':>13} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for r in rows:
        print(
            f"{r['layer']:<12} {r['deliveries']:>6}/{r['expected']:<6} {r['p50_ms']:>8} "
            f"{r['p90_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
        )
    memory = next((r for r in rows if r["layer"] == "memory"), None)
    size = {"clients": args.clients, "trades": args.trades, "rate": args.rate}
    for r in rows:
        if r["p99_ms"] is None:
            continue
        base = memory if memory is not None and r is not memory else None
        _common.record(
            f"ws_latency.{r['layer']}.p99",
            r["p99_ms"],
            "ms",
            baseline=base["p99_ms"] if base else None,
            baseline_name="in-memory layer p99" if base else None,
            p50_ms=r["p50_ms"],
            delivered=r["deliveries"],
            connect_retries=r["connect_retries"],
            expected=r["expected"],
            **size,
        )
    lost = sum(r["expected"] - r["deliveries"] for r in rows)
    audits = all(r["audit_ok"] for r in rows)
    for r in rows:
        print(f"{r['layer']}: {r['connect_retries']} connection retries; {r['audit']}")
    if lost:
        print(f"LOST {lost} deliveries")
    ok = lost == 0 and audits
    if args.smoke:
        delivered = sum(r["deliveries"] for r in rows)
        expected = sum(r["expected"] for r in rows)
        return _common.smoke_line(
            "ws_latency",
            ok,
            f"layers {', '.join(layers)}: {delivered}/{expected} deliveries, ledger audit "
            f"{'ok' if audits else 'FAILED'}",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
