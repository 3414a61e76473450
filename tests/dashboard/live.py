"""A WebSocket communicator that leaves Django's connection clean-up on, as daphne does.

channels' `WebsocketCommunicator` (its `ApplicationCommunicator`) replaces
`channels.db.close_old_connections` with a no-op for as long as any communicator waits in
`send_input` or `receive_output` (`mock.patch` on the module, so for the whole process), to keep
a test case's transaction open. A socket left waiting for events — the soak's, a page's — holds
that patch for its whole life: `database_sync_to_async` then never closes the executor thread's
connection, neither at CONN_MAX_AGE nor after an error, and after a PostgreSQL restart every
consumer's read on that thread fails on the dead connection for the rest of the run
(docs/performance.md, "The soak"). Code that drives consumers for minutes against a real
database (bench/soak.py, tests/faults) uses this class instead.
"""

from __future__ import annotations

from typing import Any

from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator


class LiveWebsocketCommunicator(WebsocketCommunicator):
    """`WebsocketCommunicator` without channels' test patch of `close_old_connections`."""

    async def send_input(self, message: dict[str, Any]) -> None:
        return await ApplicationCommunicator.send_input(self, message)

    async def receive_output(self, timeout: float = 1) -> Any:
        return await ApplicationCommunicator.receive_output(self, timeout)
