"""Secrets whose shape no pattern knows, registered by the app that holds them so that the log
and Sentry redaction (`ops.redaction`) removes every copy. A leaf: imports nothing of ours.

    secret_register(api_key)      # drip: each DRIP API key it receives or decrypts
"""

from __future__ import annotations

import threading

MIN_LENGTH = 8
"""Shorter values are ignored: they would filter ordinary words out of every log line."""

_lock = threading.Lock()
_registered: frozenset[str] = frozenset()


def secret_register(value: object) -> None:
    """Filter every later occurrence of `value` from log lines and Sentry events."""
    global _registered
    if isinstance(value, str) and len(value) >= MIN_LENGTH and value not in _registered:
        with _lock:
            _registered = _registered | {value}


def secrets_registered() -> frozenset[str]:
    return _registered
