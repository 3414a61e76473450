"""The root of the domain error hierarchy (STYLE §7).

Every refusal a user can cause is a `DomainError` carrying a message that says what was wrong
and what is allowed. It lives here, below every app, so infrastructure and every app can catch it
without importing the ledger; the ledger's own errors (`points.errors`) derive from it.
"""

from typing import Any


class DomainError(Exception):
    """A refusal that the user caused and can act on. Nothing was changed."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def __str__(self) -> str:
        return self.message
