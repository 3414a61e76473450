"""A small threaded TCP proxy for fault drills: it passes traffic, adds latency, freezes (keeps
the connections open and stops forwarding), drops connections, and — for PostgreSQL — drops the
connection right after the server committed, before the client sees the acknowledgement.

    with FaultProxy("127.0.0.1", pg_port) as proxy:
        connect to ("127.0.0.1", proxy.port)
        proxy.freeze(); proxy.thaw(); proxy.latency = 0.2; proxy.drop_connections()
        proxy.drop_next_commit_ack()   # the next COMMIT's CommandComplete never reaches the client

The PostgreSQL parsing covers only what the commit drop needs: the client's untyped start-up
packets (SSLRequest and GSSENCRequest are answered by the server with one unframed byte), then
the server's framed messages (type byte, int32 length including itself, payload), watching for
CommandComplete ('C') whose tag is "COMMIT".
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CHUNK = 65536


@dataclass
class _PgState:
    """What the proxy knows of one PostgreSQL conversation."""

    startup_done: bool = False
    client_buffer: bytes = b""
    server_buffer: bytes = b""
    unframed_replies: int = 0  # one-byte answers owed to SSLRequest/GSSENCRequest


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket | None = None
    pg: _PgState = field(default_factory=_PgState)
    closed: bool = False


class FaultProxy:
    """Forward 127.0.0.1:`port` to `target`, with switchable faults (thread-safe)."""

    def __init__(self, target_host: str, target_port: int, *, postgres: bool = True) -> None:
        self.target = (target_host, target_port)
        self.postgres = postgres
        self.latency = 0.0
        self.commits_seen = 0
        self.commit_acks_dropped = 0
        self._drop_commit_acks = 0
        self._freeze_after_drop = False
        self._running = threading.Event()
        self._thawed = threading.Event()
        self._thawed.set()
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    # --- control -------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._running.set()
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._running.clear()
        self._thawed.set()
        try:
            self._listener.close()
        finally:
            self.drop_connections()
            self._acceptor.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def freeze(self) -> None:
        """Accept and hold: connections stay open, nothing is forwarded either way (a stopped
        server or a stalled path whose TCP still answers)."""
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def drop_connections(self) -> None:
        """Close every open connection on both sides (the server restarted, a NAT forgot us)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            self._close(link)

    def drop_next_commit_ack(self, count: int = 1, *, then_freeze: bool = False) -> None:
        """The next `count` times the server answers COMMIT, close the client's connection
        instead of forwarding the answer: the server committed, the client never hears so.
        `then_freeze`: freeze the proxy at that moment too, so the client cannot ask yet."""
        with self._lock:
            self._drop_commit_acks += count
            self._freeze_after_drop = then_freeze

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    # --- plumbing ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while self._running.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(client=client)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._open, args=(link,), daemon=True).start()

    def _open(self, link: _Link) -> None:
        try:
            link.server = socket.create_connection(self.target, timeout=10)
            link.server.settimeout(None)
        except OSError:
            self._close(link)
            return
        threading.Thread(target=self._pump, args=(link, True), daemon=True).start()
        self._pump(link, False)

    def _pump(self, link: _Link, from_client: bool) -> None:
        source = link.client if from_client else link.server
        destination = link.server if from_client else link.client
        try:
            while not link.closed:
                data = source.recv(CHUNK)
                if not data:
                    break
                self._thawed.wait()
                if link.closed:
                    break
                if self.latency:
                    time.sleep(self.latency)
                if self.postgres:
                    if from_client:
                        self._watch_client(link, data)
                    elif self._ack_to_drop(link, data):
                        break
                destination.sendall(data)
        except OSError:
            pass
        self._close(link)

    def _watch_client(self, link: _Link, data: bytes) -> None:
        state = link.pg
        if state.startup_done:
            return
        state.client_buffer += data
        while len(state.client_buffer) >= 8:
            length, code = struct.unpack("!ii", state.client_buffer[:8])
            if len(state.client_buffer) < length:
                return
            state.client_buffer = state.client_buffer[length:]
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                state.unframed_replies += 1
            else:  # StartupMessage (or CancelRequest): framed messages follow
                state.startup_done = True
                state.client_buffer = b""
                return

    def _ack_to_drop(self, link: _Link, data: bytes) -> bool:
        """Scan the server's bytes; True when they carry a COMMIT acknowledgement to drop."""
        state = link.pg
        state.server_buffer += data
        drop = False
        while state.server_buffer:
            if state.unframed_replies:
                state.unframed_replies -= 1
                state.server_buffer = state.server_buffer[1:]
                continue
            if len(state.server_buffer) < 5:
                break
            kind = state.server_buffer[:1]
            (length,) = struct.unpack("!i", state.server_buffer[1:5])
            if len(state.server_buffer) < 1 + length:
                break
            payload = state.server_buffer[5 : 1 + length]
            state.server_buffer = state.server_buffer[1 + length :]
            if kind == b"C" and payload.rstrip(b"\x00") == b"COMMIT":
                with self._lock:
                    self.commits_seen += 1
                    if self._drop_commit_acks:
                        self._drop_commit_acks -= 1
                        self.commit_acks_dropped += 1
                        drop = True
                        if self._freeze_after_drop:
                            self._thawed.clear()
        return drop

    def _close(self, link: _Link) -> None:
        link.closed = True
        for sock in (link.client, link.server):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            if link in self._links:
                self._links.remove(link)
