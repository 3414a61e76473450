"""The bot's database and cache threads (`discordbot.bot`): whether the cache may be called on
the event loop, and the PostgreSQL connections the database threads keep between calls."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading

from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import DEFAULT_DB_ALIAS, connections

BOT_CONN_MAX_AGE = 300
"""Seconds the bot's database threads keep a PostgreSQL connection (`connections_kept`):
Django's default (0) opens a new connection for every call."""


def cache_is_process_memory() -> bool:
    """True when the default cache is this process's memory (Django's LocMemCache or a
    subclass), so a cache call cannot block on I/O and may run on the event loop."""
    return isinstance(caches["default"], LocMemCache)


def connections_kept() -> None:
    """In a database thread of the bot: keep this thread's connection between calls
    (`BOT_CONN_MAX_AGE`, with Django's health check before reuse, so a connection a database
    restart killed is replaced, not failed on), unless the operator chose (DB_CONN_MAX_AGE),
    a connection pool is configured, or the database is SQLite. Only this thread's connection
    settings change (Django's connections are per thread)."""
    if "DB_CONN_MAX_AGE" in os.environ:
        return
    conn = connections[DEFAULT_DB_ALIAS]
    db = conn.settings_dict
    if db.get("ENGINE", "").endswith("sqlite3") or (db.get("OPTIONS") or {}).get("pool"):
        return
    if not db.get("CONN_MAX_AGE"):
        conn.settings_dict = {**db, "CONN_MAX_AGE": BOT_CONN_MAX_AGE, "CONN_HEALTH_CHECKS": True}


def _close_thread_connections(barrier: threading.Barrier) -> None:
    connections.close_all()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=2)


def close_pool_connections(pool: concurrent.futures.ThreadPoolExecutor, workers: int) -> None:
    """Close the kept connections of every thread of `pool` (one task per thread, held at a
    barrier so that each thread takes exactly one)."""
    barrier = threading.Barrier(workers)
    futures = [pool.submit(_close_thread_connections, barrier) for _ in range(workers)]
    concurrent.futures.wait(futures, timeout=3)  # a thread stuck in a query keeps its own
