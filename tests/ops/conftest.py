"""Fixtures for the operations tests: real sockets on 127.0.0.1 that refuse or never answer,
a Redis server of our own, and a scrape of `/metrics` parsed into numbers."""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on: connections are refused at once."""
    return free_port()


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word — a hung dependency."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(1)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def health_database_at(settings, monkeypatch, django_db_blocker) -> Iterator:
    """Point the health checks (only them) at a database that cannot be reached: on PostgreSQL
    127.0.0.1:`port` (a closed port refuses, a blackhole hangs — the check must give up at its
    deadline, not at the driver's connect timeout); on SQLite a file in a folder that does not
    exist. Every other piece of code keeps using `default`."""
    alias = "health_unreachable"

    def point(port: int | None = None, *, empty_sqlite: str | None = None) -> str:
        config = copy.deepcopy(connections.settings["default"])
        if empty_sqlite:  # a reachable database where no migration was ever applied
            config.update(
                ENGINE="django.db.backends.sqlite3", NAME=empty_sqlite, OPTIONS={}, HOST="", PORT=""
            )
        elif config["ENGINE"].endswith("postgresql"):
            config.update(HOST="127.0.0.1", PORT=str(port))
        else:
            config.update(NAME="/nonexistent-folder/for-health-tests/db.sqlite3")
        connections.settings[alias] = config
        settings.HEALTH_DATABASE_ALIAS = alias
        # Django's test case refuses connections to aliases it was not told about; this one is
        # meant to be tried (and to fail), so let it through to the real connect.
        guarded = BaseDatabaseWrapper.ensure_connection
        real = django_db_blocker._real_ensure_connection

        def ensure_connection(self, *args, **kwargs):
            if self.alias == alias:
                return real(self, *args, **kwargs)
            return guarded(self, *args, **kwargs)

        monkeypatch.setattr(BaseDatabaseWrapper, "ensure_connection", ensure_connection)
        return alias

    yield point
    connections.settings.pop(alias, None)


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen, int]]:
    """A redis-server of this test's own on a free port (killed at the end if still alive)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("own redis-server did not start")
    yield proc, port
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def redis_caches(location: str) -> dict:
    return {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }


Samples = dict[tuple[str, frozenset], float]


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent: a counter never incremented is not exposed)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def scrape(client):
    """GET /metrics as Prometheus would (from 127.0.0.1) and parse it."""

    def do(**headers) -> Samples:
        response = client.get("/metrics", **headers)
        assert response.status_code == 200, response.content[:300]
        return parse_metrics(response.content.decode())

    return do
