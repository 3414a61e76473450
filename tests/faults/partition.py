"""The network-partition drill's inside (run by test_partition.py in a private network
namespace, never directly): start a private PostgreSQL, open connections through the project's
settings, take the namespace's loopback down, and time how long each query in flight waits.

Prints one line `RESULT=<json>`:
- `in_flight`: a Django query sent before the partition (its bytes were acknowledged) — only
  TCP keepalives can find that the peer is gone;
- `sent_after`: a Django query sent after the partition — tcp_user_timeout fails it;
- `control`: a plain psycopg connection without the project's options, for comparison: it is
  expected to be still waiting at the budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import traceback

BUDGET = float(os.environ.get("PARTITION_BUDGET", "8"))


def main() -> None:
    from tests.faults.servers import PrivatePostgres, postgres_bin

    server = PrivatePostgres(postgres_bin())
    status = 1
    try:
        server.init().start()
        drill(server)
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        if server.process is not None:
            server.kill()
        server.cleanup()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # the control thread is still blocked on its dead socket


def drill(server) -> None:
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{server.port}/postgres",
        DJANGO_SETTINGS_MODULE="config.settings",
        DB_KEEPALIVES_IDLE="1",
        DB_KEEPALIVES_INTERVAL="1",
        DB_KEEPALIVES_COUNT="2",
        DB_TCP_USER_TIMEOUT_MS="3000",
    )
    import django

    django.setup()
    import psycopg
    from django.db import connection

    results: dict[str, dict] = {}
    ready = threading.Barrier(4)
    partitioned = threading.Event()

    started: dict[str, float] = {}

    def timed(name: str, run) -> None:
        try:
            run(name)
            results[name] = {"error": None}
        except Exception as exc:  # the point of the drill: which error, how soon
            results[name] = {"error": type(exc).__name__, "message": str(exc)[:120]}
        if name in started:
            results[name]["seconds"] = round(time.monotonic() - started[name], 2)

    def in_flight(name: str) -> None:
        connection.ensure_connection()
        ready.wait(30)
        started[name] = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(25)")

    def sent_after(name: str) -> None:
        connection.ensure_connection()
        ready.wait(30)
        partitioned.wait(30)
        started[name] = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def control(name: str) -> None:
        conn = psycopg.connect(
            host="127.0.0.1", port=server.port, user="postgres", dbname="postgres"
        )
        ready.wait(30)
        started[name] = time.monotonic()
        conn.execute("SELECT pg_sleep(25)")

    threads = {
        name: threading.Thread(target=timed, args=(name, work), daemon=True)
        for name, work in (
            ("in_flight", in_flight),
            ("sent_after", sent_after),
            ("control", control),
        )
    }
    for thread in threads.values():
        thread.start()
    ready.wait(30)
    time.sleep(0.5)  # the in-flight queries reach the server and are acknowledged
    subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
    partitioned.set()
    deadline = time.monotonic() + BUDGET
    for thread in threads.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    for name, thread in threads.items():
        if thread.is_alive():
            results[name] = {"error": None, "still_waiting_after": BUDGET}
    print("RESULT=" + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
