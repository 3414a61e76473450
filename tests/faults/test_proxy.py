"""The fault proxy itself, in front of the private Redis: it passes, delays, freezes and drops —
a drill built on a proxy that did not would prove nothing."""

from __future__ import annotations

import socket
import time

import pytest

from .proxy import FaultProxy

pytestmark = [pytest.mark.faults]


def ping(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16)


def test_proxy_passes_delays_freezes_and_drops(private_redis):
    with FaultProxy("127.0.0.1", private_redis.port, postgres=False) as proxy:
        assert ping(proxy.port) == b"+PONG\r\n"

        proxy.latency = 0.3
        started = time.monotonic()
        assert ping(proxy.port) == b"+PONG\r\n"
        assert time.monotonic() - started >= 0.6  # once each way
        proxy.latency = 0

        proxy.freeze()
        with pytest.raises(TimeoutError):
            ping(proxy.port, timeout=0.5)
        proxy.thaw()
        assert ping(proxy.port) == b"+PONG\r\n"

        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        sock.sendall(b"PING\r\n")
        assert sock.recv(16) == b"+PONG\r\n"
        proxy.drop_connections()
        assert sock.recv(16) == b""  # closed by the proxy
        sock.close()
        assert ping(proxy.port) == b"+PONG\r\n"  # new connections still pass
