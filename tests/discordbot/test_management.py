"""`runbot`, `discord_invite_url` and `serve`: one clear line for a missing or rejected token,
the invite link's scopes and permissions, and the bot starting inside the web server's process
(and `runbot --health-port` serving its probes) against the fake Discord."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import discord
import pytest
import sentry_sdk
from django.core.management import CommandError, call_command
from sentry_sdk.integrations.asyncio import AsyncioIntegration
from sentry_sdk.transport import Transport

from discordbot.invite import INVITE_PERMISSIONS, REQUIRED_PERMISSIONS
from discordbot.runner import MSG_NO_TOKEN
from ops.sentry import sentry_init

from .fake_discord import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    f = FakeDiscord()
    f.start()
    yield f
    f.stop()


def test_runbot_without_a_token_says_so_in_one_line(settings):
    settings.DISCORD_TOKEN = ""
    with pytest.raises(CommandError) as exc:
        call_command("runbot")
    assert str(exc.value) == MSG_NO_TOKEN
    assert "\n" not in str(exc.value)


def test_runbot_with_a_rejected_token_says_so_in_one_line(settings, fake):
    settings.DISCORD_TOKEN = "not-a-real-token"
    settings.DISCORD_API_BASE = fake.base_url
    fake.fail("GET", "^/users/@me$", 401, {"message": "401: Unauthorized", "code": 0})
    try:
        with pytest.raises(CommandError) as exc:
            call_command("runbot", "--no-sync")
    finally:
        discord.http.Route.BASE = "https://discord.com/api/v10"
    message = str(exc.value)
    assert message.startswith("Discord rejected DISCORD_TOKEN (")
    assert "Reset Token" in message and "\n" not in message


class KeptTransport(Transport):
    """Keeps Sentry's envelopes in memory: nothing leaves the machine."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope)


@pytest.fixture
def sentry_active():
    """Sentry initialised the way settings do it in production, before any event loop exists."""
    assert sentry_init(
        dsn="https://public@sentry.example.invalid/1", environment="test", transport=KeptTransport()
    )
    yield sentry_sdk.get_client()
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: an inactive client for the rest of the session


def test_runbot_start_up_enables_sentrys_asyncio_integration(settings, fake, sentry_active):
    """Settings initialise Sentry before there is a loop, so the asyncio integration (reports of
    tasks nobody awaited) can only be enabled by the bot's start-up, inside its loop."""
    assert sentry_active.get_integration(AsyncioIntegration) is None
    settings.DISCORD_TOKEN = "not-a-real-token"
    settings.DISCORD_API_BASE = fake.base_url
    fake.fail("GET", "^/users/@me$", 401, {"message": "401: Unauthorized", "code": 0})
    try:
        with pytest.raises(CommandError):
            call_command("runbot", "--no-sync")
    finally:
        discord.http.Route.BASE = "https://discord.com/api/v10"
    assert fake.requests_matching("GET", "^/users/@me$"), "the start-up reached Discord"
    assert isinstance(sentry_active.get_integration(AsyncioIntegration), AsyncioIntegration)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shard-ids", "0"], "--shard-ids needs --shard-count"),
        (["--shard-count", "2", "--shard-ids", "2"], "Shard ids must be from 0 to 1: [2]."),
        (["--shard-count", "0"], "--shard-count must be at least 1."),
    ],
)
def test_runbot_checks_shard_options(settings, args, expected):
    settings.DISCORD_TOKEN = "x"
    with pytest.raises(CommandError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        call_command("runbot", *args)


def test_invite_url_has_the_scopes_and_permissions(settings, capsys):
    settings.DISCORD_APPLICATION_ID = "123456789012345678"
    call_command("discord_invite_url")
    url = urlparse(capsys.readouterr().out.strip())
    query = parse_qs(url.query)
    assert url.netloc == "discord.com" and url.path == "/oauth2/authorize"
    assert query["client_id"] == ["123456789012345678"]
    assert query["scope"] == ["bot applications.commands"]
    perms = discord.Permissions(int(query["permissions"][0]))
    assert perms == INVITE_PERMISSIONS and perms >= REQUIRED_PERMISSIONS
    assert (
        perms.mention_everyone
    )  # dispute pings reach unmentionable resolver roles (issue 23 item 16)
    assert perms.send_messages and perms.embed_links and perms.view_channel
    assert not perms.administrator


def test_invite_url_needs_an_application_id(settings):
    settings.DISCORD_APPLICATION_ID = ""
    with pytest.raises(CommandError, match="Set DISCORD_APPLICATION_ID"):
        call_command("discord_invite_url")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    # A guard against a hang, not a budget: a fresh process's first admin page on a loaded
    # two-core machine took over 5 s (issue 28).
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> str:
    """A migrated SQLite database for the server processes (migrated once per module)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'db.sqlite3'}"
    env = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": url}
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return url


@pytest.fixture
def process_env(migrated_sqlite, fake):
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": migrated_sqlite,
        "DISCORD_TOKEN": "fake-token",
        "DISCORD_API_BASE": fake.base_url,
        "DJANGO_SECRET_KEY": "test-only",
    }
    env.pop("REDIS_URL", None)
    env.pop("DJANGO_TESTING", None)
    return env


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(2)  # SIGINT, like Ctrl+C
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_serve_starts_the_bot_in_the_web_servers_process(fake, process_env):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        logged_in = _wait_for(lambda: fake.requests_matching("GET", "^/oauth2/applications/@me$"))
        status, _ = _get(f"http://127.0.0.1:{port}/admin/login/")
    finally:
        out = _stop(proc)
    assert logged_in, out
    assert status == 200, out
    assert "with the Discord bot" in out
    assert fake.requests_matching("GET", "^/users/@me$")


def test_runbot_serves_health_probes(fake, process_env):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runbot", "--no-sync", "--health-port", str(port)],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        logged_in = _wait_for(lambda: fake.requests_matching("GET", "^/oauth2/applications/@me$"))
        live, _ = _get(f"http://127.0.0.1:{port}/health/live")
        ready, body = _get(f"http://127.0.0.1:{port}/health/ready")
    finally:
        out = _stop(proc)
    assert logged_in, out
    assert live == 200, out
    # Logged in but the (fake) gateway never connects: not ready, and it says why.
    assert ready == 503 and b"discord" in body, out


def test_serve_alone_runs_the_market_clock(process_env):
    """Without a bot token, `serve` still closes markets whose time is up (DOMAIN §6)."""
    env = {**process_env, "DISCORD_TOKEN": ""}
    create = (
        "import datetime as dt; from django.utils import timezone; "
        "from markets.services import market_create; "
        "m = market_create(guild_id=111111111111111111, creator_id=222222222222222222, "
        "question='Clock?', outcomes=['Yes', 'No'], duration='1m', idempotency_key='t:clock', "
        "now=timezone.now() - dt.timedelta(minutes=5)); print(m.pk)"
    )
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", create],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    market_id = int(made.stdout.strip().splitlines()[-1])
    path = urlparse(env["DATABASE_URL"]).path

    def status() -> str:
        with sqlite3.connect(path) as conn:
            return conn.execute(
                "SELECT status FROM markets_market WHERE id = ?", (market_id,)
            ).fetchone()[0]

    assert status() == "open"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(_free_port())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        closed = _wait_for(lambda: status() == "closed")
    finally:
        out = _stop(proc)
    assert closed, out
    assert "with the Discord bot" not in out
