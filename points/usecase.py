"""The plumbing every write use case shares (DOMAIN §3), so a use case reads as its rules alone.

    @use_case(lookup=transfer_by_key, matches=_same_tip)
    def points_tip(*, guild_id: int, ..., idempotency_key: str) -> Transfer:
        members = members_prepare(guild_id=guild_id, user_ids=[from_user_id, to_user_id])
        locked = accounts_lock(members.account_ids)
        stop_if_replayed(transfer_by_key, idempotency_key)
        ...  # the rules

`use_case` owns three things:
- **retry** of the whole call on transient database errors (`points.db.retry_transient`);
- **one durable transaction** around the function (`transaction.atomic(durable=True)`);
- **idempotency by key**: the function calls `stop_if_replayed` once it holds its locks, so a
  replay is answered from the locked state and writes nothing; a twin that lost the race on a
  unique key ends in an `IntegrityError` that is classified by the constraint's name and answered
  with the first result. A replay whose request differs (`matches` is false) raises
  `IdempotencyConflict`; any other integrity error is re-raised, never swallowed.
- **know before you say**: when the connection is lost during or after COMMIT (an operational or
  interface error without a SQLSTATE once the function has returned), nobody knows whether the
  transaction committed. `use_case` closes the broken connection, reconnects and looks the key up:
  committed → the first result; not committed → the call runs again with the same key. If the
  database cannot be asked yet it raises `OutcomeUnknown`, never "nothing was changed".

`@use_case()` without `lookup` is a durable transaction with retry and no key (scheduler steps,
bookkeeping writes). `batch_use_case` is the one variant, for a call of many keyed requests
answered one by one (`betting.services.trades_apply`)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)

from core.replicas import writes_committed

from .db import integrity_constraint, retry_transient
from .errors import (
    MSG_IDEMPOTENCY_CONFLICT,
    IdempotencyConflict,
    InsufficientPoints,
    OutcomeUnknown,
    validate_key,
)

logger = logging.getLogger(__name__)


def _remembered(run: Callable[P, R]) -> Callable[P, R]:
    """After the use case committed: its WAL position is remembered for the member or staff
    user it ran for (`core.replicas`: read-your-writes; nothing without replicas)."""

    @functools.wraps(run)
    def remembered(*args: P.args, **kwargs: P.kwargs) -> R:
        result = run(*args, **kwargs)
        if not connection.in_atomic_block:
            writes_committed()
        return result

    return remembered


P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

Call = Mapping[str, Any]
"""The use case's arguments by name, defaults applied: what `matches` and `result` read."""

UNKNOWN_OUTCOME_ATTEMPTS = 3
"""How often one call runs again after a commit that was found not to have happened."""

IDEMPOTENCY_CONSTRAINTS = {
    "transfer_idempotency_key",
    "trade_idempotency_key",
    "market_idempotency_key",
    "marketevent_request_key",
}


class Replay(Exception):
    """Raised inside a use case that found its key already used after taking its locks; the
    transaction rolls back (it wrote nothing yet) and `use_case` answers with the first result."""

    def __init__(self, existing: object) -> None:
        self.existing = existing


def stop_if_replayed(lookup: Callable[[str], object | None], key: str) -> None:
    """After taking the locks: if a twin committed this key meanwhile, stop and answer with its
    result. Caller holds the row locks the twin also needed, so the lookup sees its commit."""
    existing = lookup(key)
    if existing is not None:
        raise Replay(existing)


@overload
def use_case() -> Callable[[Callable[P, R]], Callable[P, R]]: ...


@overload
def use_case(
    *,
    lookup: Callable[[str], T | None],
    matches: Callable[[T, Call], bool],
    key: str = ...,
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...


@overload
def use_case(
    *,
    lookup: Callable[[str], T | None],
    matches: Callable[[T, Call], bool],
    result: Callable[[T, Call], R],
    key: str = ...,
) -> Callable[[Callable[P, T]], Callable[P, R]]: ...


def use_case(
    *,
    lookup: Callable[[str], Any] | None = None,
    matches: Callable[[Any, Call], bool] | None = None,
    result: Callable[[Any, Call], Any] | None = None,
    key: str = "idempotency_key",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make `func` a durable, retried use case, idempotent by its keyword argument `key`.

    `lookup(key)` finds the first result for a key (after a lost race, and for
    `stop_if_replayed`); `matches(first, call)` says whether it was made by a request with the
    same content as this `call`; `result(first, call)` turns the first result into what the
    caller gets (default: the result itself). The function runs inside the durable transaction;
    validation it does there rolls back nothing because nothing was written yet."""
    if (lookup is None) != (matches is None):
        raise TypeError("use_case needs both `lookup` and `matches`, or neither")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        if lookup is not None and key not in signature.parameters:
            raise TypeError(f"{func.__qualname__} has no `{key}` argument for use_case")

        def run(*args: Any, **kwargs: Any) -> Any:
            if lookup is None or matches is None:
                with transaction.atomic(durable=True):
                    return func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            call: Call = bound.arguments
            idempotency_key = call[key]
            validate_key(idempotency_key)

            def settle(existing: Any) -> Any:
                if not matches(existing, call):
                    raise IdempotencyConflict(
                        MSG_IDEMPOTENCY_CONFLICT.format(key=idempotency_key),
                        details={"key": idempotency_key},
                    )
                return existing

            for attempt in range(1, UNKNOWN_OUTCOME_ATTEMPTS + 2):
                returned = False
                try:
                    with transaction.atomic(durable=True):
                        first = func(*args, **kwargs)
                        returned = True  # from here on only COMMIT can fail
                except Replay as replay:
                    first = settle(replay.existing)
                except IntegrityError as exc:
                    constraint = integrity_constraint(exc)
                    known = constraint in IDEMPOTENCY_CONSTRAINTS
                    existing = lookup(idempotency_key) if known else None
                    if existing is not None:
                        first = settle(existing)
                    elif constraint == "account_balance_nonnegative":
                        raise InsufficientPoints(
                            "You don't have enough points for that.",
                            details={"constraint": constraint},
                        ) from exc
                    else:
                        raise
                except (OperationalError, InterfaceError) as exc:
                    if not (returned and commit_outcome_unknown(exc)):
                        raise
                    existing = recheck(lookup, idempotency_key, exc, func.__qualname__)
                    if existing is None:
                        # Known not committed: run again with the same key.
                        if attempt > UNKNOWN_OUTCOME_ATTEMPTS:
                            raise OutcomeUnknown(idempotency_key) from exc
                        continue
                    first = settle(existing)
                return result(first, call) if result is not None else first
            raise AssertionError("unreachable")  # pragma: no cover

        # Named after `func` before `retry_transient` sees it: its logs and metrics say which
        # use case retried.
        return _remembered(retry_transient()(functools.update_wrapper(run, func)))

    return decorate


def batch_use_case(
    *,
    lookup: Callable[[str], object | None],
    first_key: Callable[[Call], str],
    on_integrity_error: Callable[[IntegrityError, Call], R],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """The one variant of `use_case`, for a call that carries many requests, each idempotent by
    its own key, and answers each (`betting.services.trades_apply`). The same retry on transient
    errors, the same durable transaction, the same "know before you say"; what differs is the
    replay, which the function does itself, request by request, from the locked state:

    - an `IntegrityError` (a key raced in by another transaction) rolls the batch back and
      `on_integrity_error(exc, call)` answers instead (e.g. the requests one by one, so one
      request cannot sink the others);
    - when the connection is lost during or after COMMIT, the batch reconnects, checks that the
      database answers (`lookup(first_key(call))`) and runs again: what committed comes back as
      replays, what did not is applied now; `OutcomeUnknown` while the database cannot be asked
      or after `UNKNOWN_OUTCOME_ATTEMPTS` more runs."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)

        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            call: Call = bound.arguments
            for attempt in range(1, UNKNOWN_OUTCOME_ATTEMPTS + 2):
                returned = False
                try:
                    with transaction.atomic(durable=True):
                        answers = func(*args, **kwargs)
                        returned = True  # from here on only COMMIT can fail
                    return answers
                except IntegrityError as exc:
                    return on_integrity_error(exc, call)
                except (OperationalError, InterfaceError) as exc:
                    if not (returned and commit_outcome_unknown(exc)):
                        raise
                    key = first_key(call)
                    recheck(lookup, key, exc, func.__qualname__)
                    if attempt > UNKNOWN_OUTCOME_ATTEMPTS:
                        raise OutcomeUnknown(key) from exc
            raise AssertionError("unreachable")  # pragma: no cover

        return _remembered(retry_transient()(functools.update_wrapper(run, func)))

    return decorate


def commit_outcome_unknown(exc: BaseException) -> bool:
    """A connection-level failure (no SQLSTATE: the server sent no error, the socket broke). A
    server-side refusal of COMMIT (serialization failure, deferred constraint) carries a SQLSTATE
    and means "not committed"."""
    return getattr(exc.__cause__, "sqlstate", None) is None


def recheck(lookup: Callable[[str], Any], key: str, exc: BaseException, name: str) -> Any:
    """Close the broken connection, reconnect, and look `key` up; `OutcomeUnknown` when the
    database cannot be asked."""
    logger.warning("commit outcome of %s (key %s) unknown, re-checking: %s", name, key, exc)
    with contextlib.suppress(DatabaseError):
        connection.close()
    try:
        return lookup(key)
    except DatabaseError as again:
        logger.warning("cannot re-check key %s yet: %s", key, again)
        with contextlib.suppress(DatabaseError):
            connection.close()
        raise OutcomeUnknown(key) from exc
