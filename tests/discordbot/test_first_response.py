"""First response first (DOMAIN §8): every command, button and modal is acknowledged within a
second of Discord creating it, even when the cache (Redis) accepts connections and never answers
— the check that must run before a modal opens gives up at its budget and the bot goes ahead
(fail open, counted)."""

from __future__ import annotations

import socket
import threading

import pytest
from prometheus_client import REGISTRY

from .harness import DEFERRED, MESSAGE, MODAL, Harness
from .test_market_message import posted_market

pytestmark = pytest.mark.django_db(transaction=True)


class HungServer:
    """A TCP server that accepts every connection and never sends a byte: a Redis that hangs
    (stuck in a long command, a half-dead proxy) rather than refusing connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hung-redis", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def hung_redis(settings):
    """The default cache (where the rate limits count) is a django-redis client configured as
    in production (1 s socket timeouts, exceptions ignored) against a hung server."""
    server = HungServer()
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.port}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                "IGNORE_EXCEPTIONS": True,
            },
        },
    }
    settings.RATELIMIT_USE_CACHE = "default"
    try:
        yield server
    finally:
        server.close()


def budget_misses(step: str) -> float:
    return REGISTRY.get_sample_value("pm_bot_pre_ack_budget_exceeded_total", {"step": step}) or 0.0


async def test_a_hung_redis_delays_no_first_response_past_one_second(hung_redis, members):
    h = await Harness.start()
    try:
        assert not h.bot._cache_inline, "the bot must be using the hung Redis"
        before = budget_misses("ratelimit")
        market_id, message = await posted_market(h, members)
        market = str(market_id)
        exchanges = [
            await h.send(h.command("balance", members.bob)),
            await h.send(h.command("daily", members.bob)),
            await h.send(h.command("tip", members.bob, member=members.carol, amount=5)),
            await h.send(h.command("leaderboard", members.bob)),
            await h.send(h.command("history", members.bob)),
            await h.send(h.command("portfolio", members.bob)),
            await h.send(h.command("notifications", members.bob, state="off")),
            await h.send(h.command("market list", members.bob)),
            await h.send(h.command("market show", members.bob, market=market)),
            await h.send(h.command("market chart", members.bob, market=market)),
            await h.send(
                h.command("bet", members.bob, market=market, outcome="1", amount=10, confirm=False)
            ),
            await h.send(
                h.command(
                    "sell", members.bob, market=market, outcome="1", shares="1", confirm=False
                )
            ),
            await h.send(h.command("settings show", members.mod)),
            await h.send(h.command("market create", members.carol)),
            await h.send(h.click(message, members.carol, label="My position")),
            await h.send(h.click(message, members.carol, label="Refresh")),
            await h.send(h.click(message, members.carol, label="Chart")),
            await h.send(h.click(message, members.carol, label="Sell")),
        ]
        buy = await h.send(h.click(message, members.carol, label="Buy Yes"))
        exchanges.append(buy)
        assert buy.response_type == MODAL, "the Buy button still opens its modal (fail open)"
        submitted = await h.send(h.submit(buy.modal, members.carol, amount="20"))
        exchanges.append(submitted)
        # The modal's answer is the quote shown before every trade (issue 13).
        assert "**Quote**" in submitted.text and "You pay" in submitted.text

        slow = {
            ex.payload["data"].get("name") or ex.payload["data"].get("custom_id"): round(
                ex.first_response_age or 99, 2
            )
            for ex in exchanges
            if ex.first_response_age is None or ex.first_response_age > 1.0
        }
        assert not slow, f"first responses later than 1 s after creation: {slow}"
        assert all(ex.response_type in (MESSAGE, DEFERRED, MODAL, 6) for ex in exchanges)
        # The modals had to wait for the rate limit (they cannot follow a defer): each gave up.
        assert budget_misses("ratelimit") >= before + 2
    finally:
        await h.close()
