"""The root of the domain error hierarchy (STYLE §7).

Every refusal a user can cause is a `DomainError` carrying a message that says what was wrong
and what is allowed. It lives here, below every app, so infrastructure and every app can catch it
without importing the ledger; the ledger's own errors (`points.errors`) derive from it.
"""

from typing import Any


class Coded:
    """An error kind named by a short, stable `code` (what logs, metrics and tests match on),
    given with the class: `class NotFound(DomainError, code="not_found"): ...`."""

    code = "error"

    def __init_subclass__(cls, *, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code


class DomainError(Coded, Exception, code="domain_error"):
    """A refusal that the user caused and can act on. Nothing was changed."""

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def __str__(self) -> str:
        return self.message
