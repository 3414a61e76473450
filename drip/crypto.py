"""Encryption at rest for DRIP API keys: Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`.

`PM_ENCRYPTION_KEY` holds one or more comma-separated Fernet keys. The first encrypts; every one
decrypts (`MultiFernet`), so a key is rotated by putting the new key first, running
`manage.py drip_rotate_key` (re-encrypts every stored API key with the first key), then removing
the old key (docs/drip.md)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from points.errors import DomainError

MSG_NO_ENCRYPTION_KEY = (
    "DRIP can't be linked yet: the bot's host must set PM_ENCRYPTION_KEY (a Fernet key) so the "
    "API key can be stored encrypted; see docs/drip.md."
)
MSG_KEY_UNREADABLE = (
    "The stored DRIP API key can't be decrypted with PM_ENCRYPTION_KEY (was the key rotated "
    "without keeping the old one?); link the realm again with /settings drip."
)


class EncryptionUnavailable(DomainError):
    code = "encryption_unavailable"


def _keys() -> list[str]:
    raw = str(getattr(settings, "PM_ENCRYPTION_KEY", "") or "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def encryption_available() -> bool:
    return bool(_keys())


def _fernet() -> MultiFernet:
    keys = _keys()
    if not keys:
        raise EncryptionUnavailable(MSG_NO_ENCRYPTION_KEY)
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:  # never echo the key material
        raise EncryptionUnavailable(
            "PM_ENCRYPTION_KEY is not a valid list of Fernet keys (32 url-safe base64 bytes "
            'each); generate one with `python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`.'
        ) from exc


def secret_encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise EncryptionUnavailable(MSG_KEY_UNREADABLE) from exc


def secret_rotate(token: str) -> str:
    """`token` re-encrypted with the first key (`MultiFernet.rotate`)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise EncryptionUnavailable(MSG_KEY_UNREADABLE) from exc
