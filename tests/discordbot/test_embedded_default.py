"""The embedded default under concurrency (issue 28): the bot, the web server and the market clock
in one `serve` process on a SQLite file, as `make run` starts them, and a rush of 200 bets and
settings changes at once through the strict fake Discord's gateway — 0 errors. SQLite takes one
writer at a time; the settings (config/settings.py: WAL, a busy timeout, IMMEDIATE
transactions) make the others wait their turn instead of failing.

The fake's 3-second deadline is stretched here: this test is about the database, and on a loaded
two-core machine 200 interactions at once may be acknowledged late (the deadline under a burst is
measured by bench/discord_burst.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from .fake_discord import LOADING, FakeDiscord
from .harness import ANNOUNCE_CHANNEL, Channel, Exchange, Harness, Member, Members

ROOT = Path(__file__).resolve().parents[2]
RUSH = 200
SETTINGS_CHANGES = 20


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(url: str, fake: FakeDiscord) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": url,
        "DISCORD_TOKEN": "fake-token",
        "DISCORD_API_BASE": fake.base_url,
        "DJANGO_SECRET_KEY": "test-only",
    }
    # The embedded default: no Redis (in-process cache and channel layer), not under tests.
    for name in ("REDIS_URL", "DJANGO_TESTING", "CACHE_KEY_PREFIX", "CHANNELS_PREFIX"):
        env.pop(name, None)
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _answered(fake: FakeDiscord, payload: dict) -> bool:
    """The bot gave its final answer: a reply, or the deferred "thinking" message replaced."""
    state = fake.interactions.get(payload["token"])
    if state is None or state.callback_type is None:
        return False
    if state.callback_type != 5:
        return True
    original = fake.messages.get(state.original_id or 0)
    return bool(state.followups) or (original is not None and not int(original["flags"]) & LOADING)


HOLDING = "Still working on it"
"""The bot's answer while the database is slow (the result replaces it when it is done)."""


def _final(fake: FakeDiscord, payload: dict) -> bool:
    """Answered with the result, not the holding message."""
    return _answered(fake, payload) and HOLDING not in Exchange(payload, fake, fed_at=0.0).text


async def test_the_embedded_default_takes_a_rush_of_bets_and_settings_changes_without_an_error(
    tmp_path,
):
    fake = FakeDiscord(gateway=True, deadline=120.0)
    fake.start()
    payloads = Harness(fake, None)
    fake.gateway_guilds = [payloads.guild_payload([Channel(ANNOUNCE_CHANNEL, "announcements")])]
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = _env(url, fake)
    _manage(env, "migrate", "--noinput", "-v", "0")
    created = _manage(
        env,
        "shell",
        "-c",
        "from markets.services import market_create; "
        f"m = market_create(guild_id={payloads.guild_id}, creator_id=222222222222222201, "
        "question='Rush?', outcomes=['Yes', 'No'], duration='1d', idempotency_key='t:rush'); "
        "print(m.pk)",
    )
    market_id = int(created.strip().splitlines()[-1])

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    web_statuses: list[int] = []
    stop_web = threading.Event()

    def browse() -> None:
        """The web server's share of the rush: the dashboard's readiness reads the database."""
        while not stop_web.is_set():
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health/ready", timeout=30
                ) as response:
                    web_statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                web_statuses.append(exc.code)
            except OSError:
                web_statuses.append(0)

    mod = Members().mod
    try:
        assert await asyncio.to_thread(fake.gateway_ready.wait, 120), "the bot never identified"
        # Moderators raise the server's command budget first (DOMAIN §7): the rush is 200
        # members at once, above the default 100 a minute; and a wide slippage limit, so that
        # every bet of the rush goes through however the others move the price.
        for setting, value in (("requests_per_minute", 10_000), ("slippage_bps", 5_000)):
            first = payloads.command("settings set", mod, setting=setting, value=value)
            fake.dispatch("INTERACTION_CREATE", first)
            assert await asyncio.to_thread(fake.wait_for, lambda p=first: _final(fake, p), 120)

        bets = [
            payloads.command(
                "bet",
                Member(600_000_000_000_000_000 + i, f"rush{i}"),
                market=str(market_id),
                outcome=str(1 + i % 2),
                amount=10,
                confirm=False,
            )
            for i in range(RUSH)
        ]
        changes = [
            payloads.command("settings set", mod, setting="slippage_bps", value=5_000 - i)
            for i in range(SETTINGS_CHANGES)
        ]
        rush = list(bets)
        for i, change in enumerate(changes):
            rush.insert((i + 1) * len(bets) // len(changes), change)
        browser = threading.Thread(target=browse, daemon=True)
        browser.start()
        for payload in rush:
            fake.dispatch("INTERACTION_CREATE", payload)
        finished = await asyncio.to_thread(
            fake.wait_for, lambda: all(_final(fake, p) for p in rush), 600
        )
        stop_web.set()
        browser.join(60)
    finally:
        stop_web.set()
        proc.send_signal(2)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        fake.stop()

    assert finished, f"{sum(not _final(fake, p) for p in rush)} interactions unanswered\n{out}"
    texts = {p["token"]: Exchange(p, fake, fed_at=0.0).text for p in rush}
    failed = [t for t in texts.values() if "went wrong" in t or HOLDING in t]
    assert failed == [], f"{len(failed)} errors, e.g. {failed[:3]}\n{out[-3000:]}"
    assert all("You bought" in texts[p["token"]] for p in bets), [
        texts[p["token"]] for p in bets if "You bought" not in texts[p["token"]]
    ][:3]
    assert all(texts[p["token"]].startswith("Saved.") for p in changes)
    path = urlparse(url).path
    with sqlite3.connect(path) as conn:
        trades = conn.execute(
            "SELECT count(*) FROM betting_trade WHERE market_id = ?", (market_id,)
        ).fetchone()[0]
        (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
    assert trades == RUSH
    assert journal == "wal"
    assert web_statuses and set(web_statuses) <= {200, 503}, web_statuses[:10]
    assert "Traceback" not in out and "database is locked" not in out, out[-3000:]
    assert fake.invalid_requests == []


@pytest.mark.django_db
def test_the_sqlite_test_database_is_a_file_configured_like_the_embedded_default():
    """Under SQLite the tests run on a file with the embedded default's settings (WAL, a busy
    timeout, IMMEDIATE transactions): Django's in-memory shared-cache test database answers a
    conflicting lock at once, which no member on the embedded default ever sees (issue 28)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the test database is PostgreSQL")
    name = connection.settings_dict["NAME"]
    assert Path(name).is_file() and "memory" not in name
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 20_000
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
