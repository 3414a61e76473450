"""A small threaded TCP proxy for fault drills: it passes traffic, adds latency, freezes (keeps
the connections open and stops forwarding), drops connections, and — for PostgreSQL — drops the
connection right after the server committed, before the client sees the acknowledgement.

    with FaultProxy("127.0.0.1", pg_port) as proxy:
        connect to ("127.0.0.1", proxy.port)
        proxy.freeze(); proxy.thaw(); proxy.latency = 0.2; proxy.drop_connections()
        proxy.drop_next_commit_ack()   # the next COMMIT's CommandComplete never reaches the client
        proxy.drop_next_commit_ack(then_refuse=1.5)  # ... then every socket is cut and new
                                                      # connections are refused for 1.5 s

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
        self._commits_to_pass = 0
        self._freeze_after_drop = False
        self._refuse_after_drop: float | None = None
        self.refused_until = 0.0
        self._running = threading.Event()
        self._thawed = threading.Event()
        self._thawed.set()
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._listener: socket.socket | None = socket.create_server(("127.0.0.1", 0))
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
            if self._listener is not None:
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

    def drop_next_commit_ack(
        self,
        count: int = 1,
        *,
        then_freeze: bool = False,
        then_refuse: float | None = None,
        after: int = 0,
    ) -> None:
        """The next `count` times the server answers COMMIT, close the client's connection
        instead of forwarding the answer: the server committed, the client never hears so.
        `then_freeze`: freeze the proxy at that moment too, so the client cannot ask yet.
        `then_refuse`: cut every open connection at that moment and refuse new ones for that
        many seconds (a short outage right after the commit). `after`: let that many COMMIT
        acknowledgements through first."""
        with self._lock:
            self._drop_commit_acks += count
            self._commits_to_pass = after
            self._freeze_after_drop = then_freeze
            self._refuse_after_drop = then_refuse

    def refuse_for(self, seconds: float) -> None:
        """Cut every open connection and refuse new ones (connection refused: nothing listens
        on the port) for `seconds`; then listen on the same port again."""
        with self._lock:
            self.refused_until = time.monotonic() + seconds
            listener, self._listener = self._listener, None
        if listener is not None:
            # close() alone leaves a thread blocked in accept() on the socket, still accepting
            # (the first connection of the "outage" went through): shutdown wakes it first.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.drop_connections()
        threading.Thread(target=self._listen_again, args=(seconds,), daemon=True).start()

    def _listen_again(self, seconds: float) -> None:
        time.sleep(seconds)
        if not self._running.is_set():
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        with self._lock:
            self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._acceptor.start()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    # --- plumbing ------------------------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        while self._running.is_set() and listener is not None:
            try:
                client, _ = listener.accept()
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
        drop = refuse = False
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
                    if self._drop_commit_acks and self._commits_to_pass:
                        self._commits_to_pass -= 1
                    elif self._drop_commit_acks:
                        self._drop_commit_acks -= 1
                        self.commit_acks_dropped += 1
                        drop = True
                        if self._freeze_after_drop:
                            self._thawed.clear()
                        refuse = self._refuse_after_drop
        if refuse:
            self.refuse_for(refuse)
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
