"""The soak (issue 21): a mixed load for minutes through the real bot process and a fake
Discord as strict as Discord, with PostgreSQL restarted, Redis hung and Discord failing on the way.

    .venv/bin/python bench/soak.py                 # 1,000 members, 5 guilds, 50 markets, 10 min
    .venv/bin/python bench/soak.py --minutes 3     # the same, shorter (fault times scale)
    .venv/bin/python bench/soak.py --smoke         # 200 members, 2 guilds, 10 markets, 1.5 min

What runs: a private PostgreSQL (the benchmarks' migrated template copied into it) and a private
Redis behind a fault proxy (tests/faults), so the machine's shared servers are never touched;
`manage.py runbot` as in production (DEBUG off, Redis cache and channel layer, notifier and
market clock on) against the fake Discord's REST API and gateway
(tests/discordbot/fake_discord.py: rate limits, the 3-second deadline, form checks). This process
sends `--rate` interactions a second from random members over the gateway: `/bet` and `/sell`
one-step (`confirm:false`) and quoted then confirmed with a click, `/portfolio`, `/leaderboard`,
`/history`, `/daily`, `/tip`, and autocomplete of `/bet`'s market (bench/_soak.py `MIX`). Every
`--lifecycle-every` seconds a moderator (through the services, as the back office does) takes
one market a step towards its end: closed, proposed, disputed (every other one, by a member who
traded), confirmed and paid; the bot's notifier posts and DMs each step. `--sockets` staff
dashboard WebSockets (a communicator on the project's ASGI app, in this process, with Django's
connection clean-up on as under daphne: tests/dashboard/live.py) replay and then count the live
events.

Faults, at the issue's minutes scaled to `--minutes` (3, 6 and 8 of 10): PostgreSQL restarted
(fast shutdown, start on the same port); Redis hung for 20 s (the proxy accepts and never
answers); Discord answering 429 then 500 for 10 s to every message post and edit (webhooks,
channels; interaction callbacks are spared, so every interaction can still be acknowledged).
Below 2 minutes the fault durations shrink in proportion.

It prints a line per minute while it runs, then per minute: interactions sent, answered, errors
("Something went wrong"), unanswered, first response and completion p50/p99 (from the fake
Discord's records); the same outside the fault windows (each window and 10 s after it); the
truth of every trade-bearing answer (told a trade ⇔ the trade is in the database: lost and
untrue must be 0), doubled rows per interaction key, the DMs (each sent once: none twice, none
recorded sent but not posted; still queued when the drain ended is shown), the dashboard
sockets' live events, the ledger audit and the bot process's RSS at minute 1 and at the end.
Exit status 1 when anything must-be-0 is not, the audit is unclean or the bot died. Targets
(docs/performance.md): p99 first response ≤ 1 s and completion ≤ 2 s outside the fault windows,
RSS growth < 10 %. `--smoke` checks correctness only, never time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import _common
import _soak
from _common import percentile
from _soak_report import ERROR, Verdicts, bot_errors, hush, p, quiet, table

BOUGHT = ("You bought", "You sold", "You predicted", "You closed your")
GRACE = 10.0  # seconds after a fault window still counted in it


def setup(args) -> tuple[list[_soak.Market], dict[int, list]]:
    """Guild settings (announcements channel, a guild limit its share of the load needs) and
    the markets, half market maker and half pool; members are new (no wallet yet)."""
    from markets.services import market_create
    from points.models import GuildSettings
    from points.rules import SYSTEM
    from points.services import guild_settings_get_or_create
    from tests.discordbot.harness import Member

    guilds = [_soak.BASE_GUILD + g for g in range(args.guilds)]
    per_minute = int(args.rate * 60 / len(guilds) * 3) + 100
    for i, guild in enumerate(guilds):
        guild_settings_get_or_create(guild_id=guild)
        GuildSettings.objects.filter(guild_id=guild).update(
            requests_per_minute=min(100_000, per_minute), announce_channel_id=_soak.ANNOUNCE + i
        )
    markets = []
    for k in range(args.markets):
        guild = guilds[k % len(guilds)]
        amm = k % 2 == 0
        market = market_create(
            guild_id=guild,
            creator_id=_soak.CREATOR + (guild - _soak.BASE_GUILD),
            question=f"Soak market {k}: will it hold?",
            outcomes=["Yes", "No"],
            duration="30d",
            mechanism="amm" if amm else "parimutuel",
            liquidity=10_000 if amm else None,
            idempotency_key=f"soak:{_common.RUN}:market:{k}",
            actor=SYSTEM,
        )
        markets.append(_soak.Market(guild, market.pk, amm))
    members: dict[int, list] = {g: [] for g in guilds}
    for i in range(args.members):
        guild = guilds[i % len(guilds)]
        members[guild].append(Member(_soak.BASE_MEMBER + i, f"soaker{i}"))
    return markets, members


async def soak(args, servers: _soak.Servers, began: float, logs: Path) -> int:
    problems: list[str] = []
    bot = fake = None
    try:
        from tests.discordbot.fake_discord import FakeDiscord
        from tests.discordbot.harness import Channel, Harness

        fake = FakeDiscord(gateway=True)
        markets, members = await _soak.db(setup, args=args)
        fake.start()
        payloads = Harness(fake, None)
        for i, guild in enumerate(members):
            payloads.guild_id, payloads.channel_id = guild, _soak.GENERAL + i
            fake.gateway_guilds.append(
                payloads.guild_payload([Channel(_soak.ANNOUNCE + i, "announcements")])
            )
        bot = _soak.bot_start(fake.base_url, servers, logs / "bot.log")
        if not await asyncio.to_thread(fake.gateway_ready.wait, 180):
            raise _common.BenchError(f"the bot did not connect: {logs / 'bot.log'}")
        sockets = _soak.Sockets(args.sockets)
        await sockets.open()
        hush()  # after the ASGI app's set-up, which configures logging again
        phases = {"setup": time.monotonic() - began}
        print(
            f"soak: {args.members} members in {args.guilds} guilds, {args.markets} markets, "
            f"{args.minutes:g} min at {args.rate:g} interactions/s, {args.sockets} dashboard "
            f"sockets, a market step every {args.lifecycle_every:g} s; bot pid {bot.pid} "
            f"(log {logs / 'bot.log'}); commit {_common.commit()}, load {_common.load()}",
            flush=True,
        )

        total = args.minutes * 60
        scale = min(1.0, args.minutes / 2)
        windows: list[list] = []  # [name, start, end] in seconds since the start

        def fault() -> str:
            now = time.monotonic() - started
            return ", ".join(
                w[0] for w in windows if w[1] <= now <= (w[2] if w[2] is not None else now) + GRACE
            )

        async def at(seconds: float) -> None:
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))

        async def faults() -> None:
            await at(0.3 * total)
            window = ["postgres restart", time.monotonic() - started, None]
            windows.append(window)
            await asyncio.to_thread(servers.restart_postgres)
            window[2] = time.monotonic() - started
            await at(0.6 * total)
            hung = ["redis hung", time.monotonic() - started, None]
            windows.append(hung)
            servers.redis_proxy.freeze()
            await asyncio.sleep(20 * scale)
            servers.redis_proxy.thaw()
            hung[2] = time.monotonic() - started
            await at(0.8 * total)
            failing = ["discord 429/500", time.monotonic() - started, None]
            windows.append(failing)
            for status, body in (
                (429, {"message": "You are being rate limited.", "retry_after": 1.0,
                       "global": False}),
                (500, {"message": "500: Internal Server Error", "code": 0}),
            ):  # fmt: skip
                for method in ("POST", "PATCH"):
                    fake.fail(method, r"^/(webhooks|channels)/", status, body, times=10**9,
                              headers={"Retry-After": "1"} if status == 429 else None)  # fmt: skip
                await asyncio.sleep(5 * scale)
                with fake.lock:
                    fake.failures.clear()
            failing[2] = time.monotonic() - started

        rss: dict[str, float] = {}
        steps: list[str] = []

        async def minutes() -> None:
            for minute in range(1, int(args.minutes) + 2):
                await at(min(60 * minute, total))
                sent = sum(1 for s in load.sent if minute - 1 <= s.at / 60 < minute)
                if minute == 1:
                    rss["minute 1"] = _soak.rss_mb(bot.pid)
                print(
                    f"  minute {minute}: sent {sent}, bot RSS {_soak.rss_mb(bot.pid):.0f} MB, "
                    f"load {_common.load()}, market steps {len(steps)}"
                    + (f", faults: {fault()}" if fault() else ""),
                    flush=True,
                )
                if bot.poll() is not None:
                    problems.append(f"the bot exited ({bot.returncode})")
                    return
                if 60 * minute >= total:
                    return

        started = time.monotonic()
        load = _soak.Load(fake, payloads, members, markets, args.rate, started, fault)
        until = started + total
        await asyncio.gather(
            load.run(until),
            faults(),
            minutes(),
            _soak.lifecycle(markets, args.lifecycle_every, until, steps),
        )
        await asyncio.gather(*load.clicks, return_exceptions=True)
        phases["load"] = time.monotonic() - started
        drained = time.monotonic()
        await drain(fake, seconds=60)
        queued = await drain_dms(args.drain)
        phases["drain"] = time.monotonic() - drained
        print("phases: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
        rss["end"] = _soak.rss_mb(bot.pid)
        if bot.poll() is not None:
            problems.append(f"the bot exited ({bot.returncode})")
        await sockets.close()
        return await report(args, fake, load, sockets, steps, rss, queued, windows, problems, logs)
    finally:
        if bot is not None:
            _soak.bot_stop(bot)
        with contextlib.suppress(Exception):
            from django.db import connection

            connection.close()
        if fake is not None:
            fake.stop()


async def drain(fake, *, seconds: float) -> None:
    """Wait until the fake has heard nothing for 5 s (the bot finished), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with fake.lock:
            last = fake.requests[-1].at if fake.requests else 0.0
        if time.monotonic() - last > 5:
            return
        await asyncio.sleep(1)


async def drain_dms(seconds: float) -> int:
    """Wait up to `seconds` for the notifier's DM lane to empty; returns the DMs still queued
    (the lane sends one every DISCORD_DM_INTERVAL, 0.5 s, for Discord's anti-spam)."""
    from discordbot.models import NotificationDelivery

    def pending() -> int:
        return NotificationDelivery.objects.filter(lane="dm", status="pending").count()

    deadline = time.monotonic() + seconds
    while (left := await _soak.db(pending)) and time.monotonic() < deadline:
        await asyncio.sleep(2)
    return left


async def report(args, fake, load, sockets, steps, rss, queued, windows, problems, logs) -> int:
    from django.db.models import Count

    from betting.models import Trade
    from discordbot.models import NotificationDelivery
    from markets.models import MarketEvent
    from points.audit import ledger_audit
    from points.models import Transfer

    verdicts = Verdicts(fake)
    rows: dict[int, dict] = {}
    calm: dict[str, list] = {"first": [], "done": []}
    told: list[tuple[_soak.Sent, bool]] = []
    odd: list[str] = []
    for sent in load.sent:
        kind, first, done, text = verdicts.of(sent)
        if kind not in ("answered",) and len(odd) < 5:
            statuses = [
                f"{r.method} {r.path.rsplit('/', 1)[-1][:12]} {r.status}"
                for r in verdicts.requests.get(sent.token, [])
            ]
            odd.append(f"{kind}: {sent.kind} at {sent.at:.1f} s ({sent.fault or 'no fault'}), "
                       f"requests {statuses}, shown {text[:100]!r}")  # fmt: skip
        row = rows.setdefault(
            int(sent.at // 60) + 1,
            {"sent": 0, "answered": 0, "by_dm": 0, "error": 0, "unanswered": 0, "first": [],
             "done": [], "faults": set()},
        )  # fmt: skip
        row["sent"] += 1
        row[kind] += 1
        row["faults"].update(f for f in sent.fault.split(", ") if f)
        for name, value in (("first", first), ("done", done)):
            if value is not None:
                row[name].append(value)
                if not sent.fault:
                    calm[name].append(value)
        if sent.trade_key is not None and kind != "unanswered" and ERROR not in text:
            told.append((sent, any(b in text for b in BOUGHT)))
    table(rows, "\nper minute (seconds from the fake Discord seeing each interaction):")
    print(
        f"outside the fault windows (+{GRACE:.0f} s): first response p50 {p(calm['first'], 50)} "
        f"p99 {p(calm['first'], 99)} s (target ≤ 1 s); completion p50 {p(calm['done'], 50)} "
        f"p99 {p(calm['done'], 99)} s (target ≤ 2 s)"
    )
    for line in odd:
        print(f"  e.g. {line}")
    print("fault windows: " + "; ".join(f"{n} {a:.0f}–{b:.0f} s" for n, a, b in windows))

    keys = [s.trade_key for s, _ in told]

    def committed() -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), 1000):
            found |= set(
                Trade.objects.filter(idempotency_key__in=keys[i : i + 1000]).values_list(
                    "idempotency_key", flat=True
                )
            )
        return found

    in_db = await _soak.db(committed)
    lost = sum(1 for s, said in told if said and s.trade_key not in in_db)
    untrue = sum(1 for s, said in told if not said and s.trade_key in in_db)
    traded = sum(1 for s, said in told if said)

    def doubled() -> int:
        ours = [f"discord:{s.payload['id']}" for s in load.sent]
        rows = 0
        for model in (Trade, Transfer):
            rows += (
                model.objects.filter(idempotency_key__in=ours)
                .values("idempotency_key")
                .annotate(n=Count("id"))
                .filter(n__gt=1)
                .count()
            )
        return rows

    twice = await _soak.db(doubled)
    unanswered = sum(r["unanswered"] for r in rows.values())
    by_dm = sum(r["by_dm"] for r in rows.values())
    errors = sum(r["error"] for r in rows.values())
    print(
        f"interactions: {len(load.sent)} sent, {sum(r['answered'] for r in rows.values())} "
        f"answered, {by_dm} answered by DM after the reply failed, {errors} errors, "
        f"{unanswered} unanswered; trade answers checked {len(told)} "
        f"({traded} told a trade): lost {lost}, untrue {untrue}, doubled {twice}"
    )

    def dms() -> dict:
        rows = list(
            NotificationDelivery.objects.filter(lane="dm").values_list(
                "target", "status", "detail", "market_id", "content"
            )
        )
        recorded = collections.Counter(int(r[0].split(":")[1]) for r in rows if r[1] == "sent")
        statuses = collections.Counter(r[1] for r in rows)
        return {"recorded": recorded, "statuses": statuses, "rows": rows}

    dm = await _soak.db(dms)
    posted: collections.Counter = collections.Counter()
    with fake.lock:
        for channel, user in fake.dm_recipients.items():
            posted[user] += len(fake.channel_messages.get(channel, []))
    for user, answers in verdicts.answer_dms.items():  # interactions' answers, not the notifier's
        posted[user] -= len(answers)
    users = set(posted) | set(dm["recorded"])
    dm_twice = sum(max(0, posted[u] - dm["recorded"][u]) for u in users)
    dm_missing = sum(max(0, dm["recorded"][u] - posted[u]) for u in users)
    for user in sorted(u for u in users if posted[u] != dm["recorded"][u])[:3]:
        with fake.lock:
            channel = fake.dm_channels.get(user)
            texts = (
                [m.get("content", "")[:70] for m in fake.channel_posts(channel)] if channel else []
            )
        rows = [(*r[1:4], r[4][:70]) for r in dm["rows"] if r[0] == f"dm:{user}"]
        print(f"  DMs of {user}: posted {texts}; rows {rows}")
    print(
        f"DMs: {sum(posted.values())} posted, {sum(dm['recorded'].values())} recorded sent "
        f"({dict(dm['statuses'])}): sent twice {dm_twice}, recorded but never posted "
        f"{dm_missing}, still queued at the end {queued}"
    )
    written = await _soak.db(
        lambda: dict(MarketEvent.objects.filter(id__gt=sockets.after).values_list("id", "type"))
    )
    events = len(written)
    got = [len(r) for r in sockets.received]
    dup = sum(len(r) - len(set(r)) for r in sockets.received)
    if got:
        print(
            f"dashboard: {len(got)} sockets received {min(got)}–{max(got)} live events of "
            f"{events} written ({dup} duplicates; consumers ended {dict(sockets.endings)}, "
            f"reconnected with a replay; failed reconnections {dict(sockets.refusals)})"
        )
        missed = collections.Counter(written[i] for i in set(written) - set(sockets.received[0]))
        if missed:
            last = max(sockets.received[0], default=sockets.after)
            print(
                f"  missed by the first socket, by type: {dict(missed)}; its last live event "
                f"#{last}, {sum(1 for i in written if i > last)} written after it"
            )
    print(f"market steps: {len(steps)}: {', '.join(steps[-6:])}")
    for step in steps:
        if "FAILED" in step:
            print(f"  {step}")
    audit = await _soak.db(ledger_audit)
    print(f"ledger audit: {'ok' if audit.ok else 'FAILED: ' + str(audit.violations[:3])}")
    growth = (rss["end"] / rss["minute 1"] - 1) * 100 if rss.get("minute 1") else float("nan")
    print(
        f"bot RSS: minute 1 {rss.get('minute 1', float('nan')):.0f} MB, end "
        f"{rss['end']:.0f} MB ({growth:+.1f} %, target < 10 %)"
    )
    print(f"invalid requests counted by the fake Discord: {len(fake.rejections)}")
    print(f"bot log: {bot_errors(logs / 'bot.log')}; this process's log: {dict(quiet.counts)}")
    for problem in problems:
        print(f"PROBLEM: {problem}")

    size = {"members": args.members, "guilds": args.guilds, "markets": args.markets,
            "minutes": args.minutes, "rate": args.rate, "interactions": len(load.sent),
            "unanswered": unanswered, "lost_trades": lost, "errors": errors}  # fmt: skip
    if calm["first"]:
        _common.record("soak.first_response_p99_outside_faults", percentile(calm["first"], 99),
                       "s", p50=round(percentile(calm["first"], 50), 3), **size)  # fmt: skip
        _common.record("soak.completion_p99_outside_faults", percentile(calm["done"], 99), "s",
                       p50=round(percentile(calm["done"], 50), 3), **size)  # fmt: skip
    _common.record("soak.bot_rss_growth", growth, "%", rss_minute1_mb=round(rss["minute 1"]),
                   rss_end_mb=round(rss["end"]), **size)  # fmt: skip
    must_be_zero = {"lost": lost, "untrue": untrue, "doubled": twice, "unanswered": unanswered,
                    "DMs twice": dm_twice, "DMs missing": dm_missing}  # fmt: skip
    ok = audit.ok and not problems and not any(must_be_zero.values())
    if args.smoke:
        return _common.smoke_line(
            "soak",
            ok,
            f"{len(load.sent)} interactions over {args.minutes:g} min with 3 faults: "
            + ", ".join(f"{k} {v}" for k, v in must_be_zero.items())
            + f", errors {errors}, ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--guilds", type=int, default=5)
    parser.add_argument("--markets", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="interactions a second")
    parser.add_argument("--sockets", type=int, default=50, help="dashboard WebSockets")
    parser.add_argument("--lifecycle-every", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for DMs")
    parser.add_argument("--smoke", action="store_true", help="200 members, 1.5 min, no timing")
    args = parser.parse_args()
    if args.smoke:
        args.members, args.guilds, args.markets, args.minutes = 200, 2, 10, 1.5
        args.rate, args.sockets, args.lifecycle_every, args.drain = 6.0, 10, 5.0, 20.0
    for name in ("members", "guilds", "markets", "minutes", "rate"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    if args.guilds > args.members or args.guilds > args.markets:
        parser.error("--guilds must not exceed --members or --markets")
    began = time.monotonic()
    servers = _soak.Servers()
    logs = Path(tempfile.mkdtemp(prefix="pm-soak-"))  # the bot's log: kept when the soak fails
    code = 1
    try:
        servers.start()
        _common.django_setup(servers.database_url, redis=servers.redis_url)
        # The ASGI app (dashboard sockets) serves static files; the soak asks for none.
        warnings.filterwarnings("ignore", message="No directory at")
        hush()
        code = asyncio.run(soak(args, servers, began, logs))
        print(f"soak: {time.monotonic() - began:.0f} s in all, load average {_common.load()}")
        return code
    finally:
        servers.stop()
        if code == 0:
            shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
