"""Several bot processes, one system (issue 24): `--interactions` (2,000) one-step `/bet`s from as
many members over `--guilds` (8) guilds, sent through the strict fake Discord's gateway to two
real `runbot --shard-count 2 --shard-ids N` processes on one PostgreSQL (and Redis when set).
Each interaction goes to the process of its guild's shard, `(guild_id >> 22) % 2`, as Discord
routes it (`tests/discordbot/fake_discord.py` `shard_of`). When `--kill-at` (40 %) of the
interactions are sent, the process holding the notifier's lease is SIGKILLed; it is started
again `--down` (5) seconds later while the stream goes on, and before the last 30 % (`--back-at`
0.7) the stream waits until it has connected again, so the restarted process takes its share
too. Meanwhile `--announcements` (20) markets are created, one every few seconds, each
announced in its guild's channel by whichever process holds the notifier's lease.

    .venv/bin/python bench/processes.py                 # 2,000 interactions, production leases
    .venv/bin/python bench/processes.py --smoke         # 80 interactions, 4 s leases

Prints, per bot process (shard 0, shard 1, the restarted one): interactions sent to it and
answered by it; then

- lost: an interaction whose effect (its trade, `discord:<interaction id>`) exists with no
  answer, or whose answer says "You bought" with no trade — target 0;
- doubled: a member (each sends one `/bet`) with more than one trade — target 0;
- unanswered: delivered to a live process and never answered — target 0;
- in flight at the kill: delivered to the killed process and not answered when it died. Discord
  does not re-deliver them to another shard; the member sees "This interaction failed" (or a
  "thinking…" that never ends). Each may have taken effect at most once (the trade commits or
  not; the member sees it in `/portfolio`); the line says how many did;
- not delivered: sent by members while their shard's process was down. Discord drops them
  ("This interaction failed"); no effect;
- notifications: every market created (the bet markets and the announcements) announced exactly
  once in its guild's channel (markets announced twice, markets not announced — target 0);
- the notifier's lease takeover: seconds from the SIGKILL to another process holding it
  (`LEASE_SECONDS` + `LEASE_RENEW_SECONDS` bound it: 20 s by default; issue 24 asks ≤ 30 s);
- the ledger audit.

Fails (exit 1) on any lost, doubled or unanswered interaction, a notification missing or
repeated, a lease never taken over, or an unclean audit; never on speed (a takeover past 30 s is
printed as OVER the bound; `tests/discordbot/test_failover.py` asserts the bound). `--deadline`
is Discord's 3 s for the first response at full size; the smoke run allows 30 s (a loaded CI
machine must not fail it on time). PostgreSQL: a fresh `<base>_bench_processes`
(bench/_common.py); Redis from BENCH_REDIS_URL / REDIS_URL under the run's own key prefix, else
each process keeps its own cache (said in the output).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import _common

BASE_GUILD = 100_000_000_000
"""Guild k's id is (BASE_GUILD + k) << 22: shard k % shard count."""
BASE_MEMBER = 810_000_000_000_000_000
TAKEOVER_BOUND = 30.0
SHARDS = 2


def guild_id(k: int) -> int:
    return (BASE_GUILD + k) << 22


def channel(k: int) -> int:
    return guild_id(k) + 1


def announce_channel(k: int) -> int:
    return guild_id(k) + 2


class Bots:
    """The bot processes: one per shard, restartable; every process ever started, in order."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.current: dict[int, subprocess.Popen] = {}
        self.names: dict[int, str] = {}  # pid → "shard 0", "shard 1 (restarted)"
        self.started: list[subprocess.Popen] = []

    def start(self, shard: int) -> subprocess.Popen:
        n = sum(1 for p in self.started if self.names[p.pid].startswith(f"shard {shard}"))
        log = self.logs / f"bot{shard}-{n}.log"
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runbot", "--no-sync", *shard_args(shard)],
            cwd=_common.ROOT,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL takes all of it
        )
        self.current[shard] = proc
        self.names[proc.pid] = f"shard {shard}" + (" (restarted)" if n else "")
        self.started.append(proc)
        return proc

    def kill(self, shard: int) -> None:
        proc = self.current[shard]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in self.started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.logs.glob("*.log"))
        )


def shard_args(shard: int) -> list[str]:
    return ["--shard-count", str(SHARDS), "--shard-ids", str(shard)]


def wait(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def holder_pid(lease: str) -> int | None:
    """The pid holding `lease` now (None: nobody, or expired); the database's clock."""
    from core.leases import holder_pid as pid_of
    from core.leases import lease_holder_now

    return pid_of(lease_holder_now(lease))


def answer(fake, token: str) -> str:
    """The interaction's answer as Discord shows it; "" when none (never acknowledged, or
    still "thinking…")."""
    from tests.discordbot.fake_discord import LOADING
    from tests.discordbot.harness import message_text

    with fake.lock:
        state = fake.interactions.get(token)
        if state is None or state.callback_type is None:
            return ""
        shown = [fake.messages.get(i) for i in state.followups]
        shown = [m for m in shown if m]
        if not shown and state.original_id and not state.original_deleted:
            original = fake.messages.get(state.original_id)
            if original and not int(original["flags"]) & LOADING:
                shown = [original]
        return message_text(shown[-1]) if shown else ""


def announced(fake, guilds: int) -> Counter:
    """How many times each market was announced (its buttons carry it: `pm:<key>:<market>`)."""
    import re

    from tests.discordbot.harness import buttons

    seen: Counter = Counter()
    for k in range(guilds):
        for message in fake.channel_posts(announce_channel(k)):
            ids = {
                int(m.group(1))
                for b in buttons(message)
                if (m := re.match(r"pm:[^:]+:(\d+)", b.get("custom_id", "")))
            }
            seen.update(ids)
    return seen


def setup(args) -> tuple[list[list[int]], list[int]]:
    """Guild settings (announcement channel, a limit of commands a minute fit for the rush) and
    `--markets` markets per guild; returns the markets by guild and every market id."""
    from markets.services import market_create
    from points.models import GuildSettings
    from points.rules import SYSTEM
    from points.services import guild_settings_get_or_create

    per_guild = -(-args.interactions // args.guilds)
    markets: list[list[int]] = []
    for k in range(args.guilds):
        guild_settings_get_or_create(guild_id=guild_id(k))
        GuildSettings.objects.filter(guild_id=guild_id(k)).update(
            announce_channel_id=announce_channel(k),
            requests_per_minute=min(100_000, max(100, 2 * per_guild)),
        )
        markets.append(
            [
                market_create(
                    guild_id=guild_id(k),
                    creator_id=guild_id(k),
                    question=f"Processes market {k}.{j}",
                    outcomes=["A", "B", "C"],
                    duration="30d",
                    liquidity=100_000,
                    idempotency_key=f"bench:processes:{k}:{j}",
                    actor=SYSTEM,
                ).pk
                for j in range(args.markets)
            ]
        )
    return markets, [m for ms in markets for m in ms]


def announce_later(args, created: list[int], stop: threading.Event, every: float) -> None:
    """`--announcements` markets, one every `every` seconds, in the guilds in turn."""
    from django.db import close_old_connections

    from markets.services import market_create
    from points.rules import SYSTEM

    try:
        for i in range(args.announcements):
            if stop.wait(every):
                return
            k = i % args.guilds
            created.append(
                market_create(
                    guild_id=guild_id(k),
                    creator_id=guild_id(k),
                    question=f"Announced during the run {i}",
                    outcomes=["Yes", "No"],
                    duration="30d",
                    idempotency_key=f"bench:processes:announce:{i}",
                    actor=SYSTEM,
                ).pk
            )
    finally:
        close_old_connections()


def bot_env(args, url: str, fake) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": url,
        "DJANGO_SECRET_KEY": "bench-only",
        "LOG_LEVEL": "WARNING",
        "DISCORD_TOKEN": "fake-token",
        "DISCORD_API_BASE": fake.base_url,
        "DISCORD_GATEWAY_URL": fake.base_url.replace("http://", "ws://").replace(
            "/api/v10", "/gateway"
        ),
        "DISCORD_NOTIFY_SECONDS": str(args.notify_seconds),
        "LEASE_SECONDS": str(args.lease_seconds),
        "LEASE_RENEW_SECONDS": str(args.lease_renew_seconds),
    }
    env.pop("DJANGO_TESTING", None)
    if os.environ.get("REDIS_URL"):  # django_setup set it with the run's own prefixes
        env["CACHE_KEY_PREFIX"] = os.environ["CACHE_KEY_PREFIX"]
        env["CHANNELS_PREFIX"] = os.environ["CHANNELS_PREFIX"]
    else:
        for name in ("REDIS_URL", "CACHE_KEY_PREFIX", "CHANNELS_PREFIX"):
            env.pop(name, None)
    return env


def run(args, url: str) -> int:
    from betting.models import Trade
    from core.leases import NOTIFIER
    from discordbot.models import NotificationDelivery
    from points.audit import ledger_audit
    from tests.discordbot.fake_discord import FakeDiscord
    from tests.discordbot.harness import Channel, Harness, Member

    markets, every_market = setup(args)
    fake = FakeDiscord(gateway=True, deadline=args.deadline, latency=args.latency)
    fake.start()
    h = Harness(fake, None)
    guild_payloads = []
    for k in range(args.guilds):
        h.guild_id, h.channel_id = guild_id(k), channel(k)
        guild_payloads.append(h.guild_payload([Channel(announce_channel(k), "announcements")]))
    fake.gateway_guilds = guild_payloads
    logs = Path(tempfile.mkdtemp(prefix="pm_bench_processes_"))
    bots = Bots(bot_env(args, url, fake), logs)
    lease = f"{NOTIFIER}:default"
    cache = "Redis" if os.environ.get("REDIS_URL") else "each process's own (no Redis)"
    print(
        f"{args.interactions} one-step /bet from as many members over {args.guilds} guilds "
        f"({args.markets} market(s) each), 2 bot processes (--shard-count 2), {args.rate:g}/s; "
        f"cache {cache}; leases {args.lease_seconds:g} s, renewed every "
        f"{args.lease_renew_seconds:g} s; Discord's deadline {args.deadline:g} s; logs {logs}"
    )

    sent: list[tuple[dict, int | None, int | None, float]] = []  # payload, shard, pid, when
    created: list[int] = []
    stop = threading.Event()
    duration = args.interactions / args.rate
    announcer = threading.Thread(
        target=announce_later,
        args=(args, created, stop, duration / (args.announcements + 1)),
        daemon=True,
    )
    victim = victim_pid = killed_at = restarted_at = takeover = None
    try:
        for shard in range(SHARDS):
            bots.start(shard)
        if not wait(lambda: len(fake.shards_connected()) == SHARDS, 180):
            raise _common.BenchError("the bot processes did not connect:\n" + bots.tail())
        if not wait(lambda: holder_pid(lease) is not None, 60):
            raise _common.BenchError("nobody took the notifier's lease:\n" + bots.tail())
        announcer.start()
        kill_at = int(args.interactions * args.kill_at)
        back_at = int(args.interactions * args.back_at)
        back = None
        started = time.monotonic()
        for i in range(args.interactions):
            if i == kill_at:
                victim_pid = holder_pid(lease)
                victim = next(s for s, p in bots.current.items() if p.pid == victim_pid)
                bots.kill(victim)
                killed_at = time.monotonic()
                print(f"SIGKILL {bots.names[victim_pid]} (pid {victim_pid}, the notifier's holder)")
            if killed_at and restarted_at is None and time.monotonic() - killed_at >= args.down:
                bots.start(victim)
                restarted_at = time.monotonic()
            if killed_at and takeover is None:
                now_holder = holder_pid(lease)
                if now_holder not in (None, victim_pid):
                    takeover = time.monotonic() - killed_at
            if i == back_at and victim is not None:
                # The restarted process takes the last part of its shard's stream.
                if restarted_at is None:
                    bots.start(victim)
                    restarted_at = time.monotonic()
                if not wait(lambda: len(fake.shards_connected()) == SHARDS, 180):
                    raise _common.BenchError("the restarted process did not connect")
                back = time.monotonic() - killed_at
                started += time.monotonic() - (started + i / args.rate)  # no catching up
            k = i % args.guilds
            h.guild_id, h.channel_id = guild_id(k), channel(k)
            member = Member(BASE_MEMBER + i, f"m{i}")
            market = markets[k][(i // args.guilds) % args.markets]
            payload = h.command(
                "bet", member, market=str(market), outcome=str(i % 3 + 1), amount=10, confirm=False
            )
            shards = fake.dispatch("INTERACTION_CREATE", payload)
            shard = shards[0] if shards else None
            pid = bots.current[shard].pid if shard is not None else None
            sent.append((payload, shard, pid, time.monotonic()))
            pause = started + (i + 1) / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        wall = time.monotonic() - started
        if restarted_at is None and victim is not None:
            bots.start(victim)
        if takeover is None and killed_at is not None:
            wait(lambda: holder_pid(lease) not in (None, victim_pid), TAKEOVER_BOUND * 2, 0.05)
            if holder_pid(lease) not in (None, victim_pid):
                takeover = time.monotonic() - killed_at
        announcer.join()

        def live(item) -> bool:
            return item[2] is not None and item[2] != victim_pid

        def all_answered() -> bool:
            return all(answer(fake, item[0]["token"]) for item in sent if live(item))

        wait(all_answered, 180, 0.5)
        expected = every_market + created
        wait(lambda: set(announced(fake, args.guilds)) >= set(expected), 120, 0.5)
        wait(lambda: not NotificationDelivery.objects.exclude(status="sent").exists(), 60, 0.5)
        time.sleep(3 * args.notify_seconds)  # a few more notifier passes: a repeat would show
    finally:
        stop.set()
        bots.stop()
        fake.stop()

    trades = Counter()
    by_member = Counter()
    for key, user in Trade.objects.filter(idempotency_key__startswith="discord:").values_list(
        "idempotency_key", "user_id"
    ):
        trades[key] += 1
        by_member[user] += 1
    per_process: dict[int, list[int]] = {}  # pid → [sent, answered]
    lost = unanswered = in_flight = in_flight_done = undelivered = undelivered_done = 0
    odd: list[str] = []
    kinds = Counter()
    for payload, _shard, pid, _at in sent:
        text = answer(fake, payload["token"])
        effect = trades[f"discord:{payload['id']}"]
        if pid is None:
            undelivered += 1
            undelivered_done += effect
            continue
        counts = per_process.setdefault(pid, [0, 0])
        counts[0] += 1
        if not text:
            if pid == victim_pid:
                in_flight += 1
                in_flight_done += effect
            elif effect:
                lost += 1
            else:
                unanswered += 1
            continue
        counts[1] += 1
        kind = (
            "traded"
            if "You bought" in text
            else "price moved"
            if text.startswith("The price moved")
            else "other"
        )
        kinds[kind] += 1
        if kind == "other" and len(odd) < 3:
            odd.append(text[:160])
        if (kind == "traded") != bool(effect):
            lost += 1
    doubled = sum(1 for n in by_member.values() if n > 1) + sum(1 for n in trades.values() if n > 1)
    seen = announced(fake, args.guilds)
    expected = every_market + created
    missing = [m for m in expected if not seen[m]]
    twice = [m for m, n in seen.items() if n > 1]
    audit = ledger_audit()

    print(f"sent {len(sent)} in {wall:.1f} s ({len(sent) / wall:.0f}/s)")
    if back is not None:
        print(f"  the killed shard was back (restarted, connected) {back:.1f} s after the kill")
    for proc in bots.started:
        s, a = per_process.get(proc.pid, [0, 0])
        print(f"  {bots.names[proc.pid]:<22} sent {s:5d}   answered {a:5d}")
    print(f"answers              {', '.join(f'{k} {v}' for k, v in kinds.items())}")
    for text in odd:
        print(f"  e.g. {text!r}")
    print(f"lost                 {lost:5d}   (an effect with no answer, or an answer with none)")
    print(f"doubled              {doubled:5d}   (two trades for one interaction or one member)")
    print(f"unanswered           {unanswered:5d}   (delivered to a live process, no answer)")
    print(
        f"in flight at kill    {in_flight:5d}   (delivered to the killed process, unanswered: "
        f"'interaction failed'; {in_flight_done} took effect, each once)"
    )
    print(
        f"not delivered        {undelivered:5d}   (their shard's process was down: "
        f"'interaction failed'; {undelivered_done} took effect)"
    )
    print(
        f"notifications        {len(expected)} markets: {len(expected) - len(missing)} announced, "
        f"{len(missing)} missing, {len(twice)} twice"
    )
    took = "never" if takeover is None else f"{takeover:.1f} s"
    if takeover is not None and takeover > TAKEOVER_BOUND:
        took += " — OVER the bound"
    print(f"notifier lease       taken over {took} after the SIGKILL (bound {TAKEOVER_BOUND:g} s)")
    print(f"ledger audit         {'ok' if audit.ok else 'FAILED: ' + str(audit.violations[:3])}")

    answered = sum(a for _, a in per_process.values())
    if takeover is not None:
        _common.record(
            "processes.notifier_takeover",
            takeover,
            "s",
            baseline=args.lease_seconds + args.lease_renew_seconds,
            baseline_name="LEASE_SECONDS + LEASE_RENEW_SECONDS",
            interactions=len(sent),
        )
    _common.record(
        "processes.interactions_per_s",
        len(sent) / wall,
        "/s",
        baseline=args.rate,
        baseline_name="offered rate",
        answered=answered,
        lost=lost,
        doubled=doubled,
        unanswered=unanswered,
        in_flight=in_flight,
        undelivered=undelivered,
    )
    ok = (
        lost == 0
        and doubled == 0
        and unanswered == 0
        and undelivered_done == 0
        and not missing
        and not twice
        and takeover is not None  # its time is printed against the bound, not failed on
        and audit.ok
    )
    if args.smoke:
        return _common.smoke_line(
            "processes",
            ok,
            f"{len(sent)} interactions over 2 processes, one SIGKILLed and restarted: "
            f"{answered} answered, {lost} lost, {doubled} doubled, {unanswered} unanswered, "
            f"{in_flight} in flight at the kill, {undelivered} not delivered; "
            f"{len(expected) - len(missing)}/{len(expected)} announced, {len(twice)} twice; "
            f"takeover {took}; ledger audit {'ok' if audit.ok else 'FAILED'}",
        )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=2000)
    parser.add_argument("--guilds", type=int, default=8)
    parser.add_argument("--markets", type=int, default=2, help="bet markets per guild")
    parser.add_argument("--rate", type=float, default=40.0, help="interactions sent a second")
    parser.add_argument("--kill-at", type=float, default=0.4, help="share sent before the kill")
    parser.add_argument("--down", type=float, default=5.0, help="seconds before the restart")
    parser.add_argument(
        "--back-at", type=float, default=0.7, help="share sent before the restarted one is back"
    )
    parser.add_argument("--announcements", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=3.0, help="Discord's first response")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per fake reply")
    parser.add_argument("--lease-seconds", type=float, default=15.0)
    parser.add_argument("--lease-renew-seconds", type=float, default=5.0)
    parser.add_argument("--notify-seconds", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="toy size: 80 interactions")
    args = parser.parse_args()
    if args.smoke:
        args.interactions, args.guilds, args.rate = 80, 4, 10.0
        args.announcements, args.down, args.deadline = 4, 2.0, 30.0
        args.lease_seconds, args.lease_renew_seconds, args.notify_seconds = 4.0, 0.5, 0.5
    if args.guilds < SHARDS:
        parser.error(f"--guilds must be at least {SHARDS}: every shard gets guilds")
    if not 0 < args.kill_at < args.back_at < 1:
        parser.error("--kill-at and --back-at are shares of the interactions: 0 < kill < back < 1")
    url = _common.fresh_database("processes")
    _common.django_setup(url, redis=_common.redis_url())
    print(f"database: {url}")
    return run(args, url)


if __name__ == "__main__":
    sys.exit(main())
