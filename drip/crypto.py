"""Encryption at rest for DRIP API keys: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

`PM_ENCRYPTION_KEY` holds one or more comma-separated Fernet keys. The first encrypts; every one
decrypts (`MultiFernet`), so a key is rotated by putting the new key first, running
`manage.py drip_rotate_key` (re-encrypts every stored API key with the first key), then removing
the old key (docs/drip.md)."""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from points.errors import DomainError

MSG_NO_ENCRYPTION_KEY = (
    "DRIP can't be linked on this bot yet: it is not set up to store API keys safely. Nothing "
    "was stored; whoever runs the bot has been told."
)
"""What a member (or a server's moderator) reads. The host's words are `HOST_NO_KEY`."""
MSG_KEY_UNREADABLE = (
    "The stored DRIP API key can't be decrypted with PM_ENCRYPTION_KEY (was the key rotated "
    "without keeping the old one?); link the realm again with /settings drip."
)
"""For moderators (the DRIP link's `last_error`, the worker's health), never for members."""
HOST_NO_KEY = "PM_ENCRYPTION_KEY is not set: DRIP API keys cannot be stored (docs/drip.md)."
HOST_BAD_KEY = (
    "PM_ENCRYPTION_KEY is not a valid list of Fernet keys (32 url-safe base64 bytes each); "
    'generate one with `.venv/bin/python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"`.'
)


MSG_KEY_UNAVAILABLE = (
    "DRIP transfers can't run in this server right now: its link to DRIP needs a moderator's "
    "attention (they can see why in the back office). Nothing was moved."
)
"""What a member reads when the stored key cannot be used."""

logger = logging.getLogger(__name__)


class EncryptionUnavailable(DomainError, code="encryption_unavailable"): ...


def _keys() -> list[str]:
    raw = str(getattr(settings, "PM_ENCRYPTION_KEY", "") or "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def encryption_available() -> bool:
    return bool(_keys())


def key_problem() -> str | None:
    """What is wrong with PM_ENCRYPTION_KEY for the host (None: usable, or not set at all —
    DRIP is optional). Never contains the key."""
    keys = _keys()
    if not keys:
        return None
    try:
        MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError):
        return HOST_BAD_KEY
    return None


def _fernet() -> MultiFernet:
    """The keys; `EncryptionUnavailable` carries member words as its message and the host's
    in `details["host"]` (logged, shown in the admin and `/health/ready`, never to members)."""
    keys = _keys()
    if not keys:
        logger.error(HOST_NO_KEY)
        raise EncryptionUnavailable(MSG_NO_ENCRYPTION_KEY, details={"host": HOST_NO_KEY})
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:  # never echo the key material
        logger.error(HOST_BAD_KEY)
        raise EncryptionUnavailable(MSG_NO_ENCRYPTION_KEY, details={"host": HOST_BAD_KEY}) from exc


def secret_encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise EncryptionUnavailable(
            MSG_KEY_UNAVAILABLE, details={"host": MSG_KEY_UNREADABLE}
        ) from exc


def secret_rotate(token: str) -> str:
    """`token` re-encrypted with the first key (`MultiFernet.rotate`)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise EncryptionUnavailable(
            MSG_KEY_UNAVAILABLE, details={"host": MSG_KEY_UNREADABLE}
        ) from exc
