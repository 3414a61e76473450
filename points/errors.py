"""The ledger's domain errors (STYLE §7), rooted in `core.errors.DomainError`.

Every refusal a user can cause is a `DomainError` carrying a message that says what was wrong
and what is allowed. Interfaces (Discord cogs, admin, views) show `message` as it is; tests reuse
the message constants below.
"""

# The root lives in the shared core (every app may import it); importing it from here still works.
from core.errors import DomainError as DomainError
from core.text import MSG_BAD_CHARACTER, text_problem
from core.text import id_from_text as id_from_text  # moved to core (the admin filters use it)

MAX_AMOUNT = 10**15
"""Largest amount one transfer may move: far below what a BigInteger balance holds (2**63 − 1),
so no sequence of legal transfers can overflow an account."""

AMOUNT_RANGE = f"a whole number of points from 1 to {MAX_AMOUNT:,}"

MSG_INSUFFICIENT_POINTS = "You don't have enough points: you have {balance:,} and need {needed:,}."
MSG_IDEMPOTENCY_CONFLICT = (
    "This request repeats an earlier one (key {key}) with different content; nothing was done."
)
MSG_DEDUCT_TOO_MUCH = "The member has only {balance:,} points; you can deduct at most {balance:,}."
"""A moderator's over-deduction, in a moderator's words (the member-facing
`MSG_INSUFFICIENT_POINTS` says "you")."""
MSG_TIP_SELF = "You can't tip yourself."
MSG_DAILY_ALREADY_CLAIMED = (
    "You already claimed today's bonus. The next one is available {next_at}."
)
MSG_DAILY_DISABLED = "Daily bonuses are turned off in this server."
MSG_REASON_REQUIRED = "A reason is required (1–500 characters)."
MSG_INVALID_ID = "That is not a valid Discord id: use a positive whole number."


class InvalidInput(DomainError, code="invalid_input"): ...


class InvalidAmount(InvalidInput, code="invalid_amount"): ...


class InsufficientPoints(DomainError, code="insufficient_points"): ...


class IdempotencyConflict(DomainError, code="idempotency_conflict"): ...


class NotAllowed(DomainError, code="not_allowed"): ...


class AlreadyClaimed(DomainError, code="already_claimed"): ...


class NotFound(DomainError, code="not_found"): ...


MSG_OUTCOME_UNKNOWN = (
    "I'm still checking whether that went through (the database connection dropped as it was "
    "saved). You'll get the verified result here; please don't repeat the command."
)


class OutcomeUnknown(Exception):
    """A commit whose outcome nobody knows yet: the connection was lost during or after COMMIT
    and the idempotency key could not be looked up either (the database is still away). Not a
    `DomainError`: something *may* have changed. The caller repeats the same call with the same
    key later (a replay answers with the committed result, or the call does its work once)."""

    def __init__(self, key: str) -> None:
        super().__init__(MSG_OUTCOME_UNKNOWN)
        self.key = key
        self.message = MSG_OUTCOME_UNKNOWN


def validate_amount(amount: object, *, maximum: int = MAX_AMOUNT, what: str = "amount") -> int:
    """Return `amount` if it is an int in 1..maximum, else raise `InvalidAmount` with the range."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= maximum:
        raise InvalidAmount(
            f"That {what} is not valid: use a whole number of points from 1 to {maximum:,}.",
            details={"amount": repr(amount), "minimum": 1, "maximum": maximum},
        )
    return amount


def validate_snowflake(value: object, *, what: str = "id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidInput(MSG_INVALID_ID, details={what: repr(value)})
    return value


def validate_reason(reason: object, *, required: bool = True) -> str:
    """A trimmed reason of 1–500 characters (0 when not `required`); it may hold line breaks and
    emoji, not characters that cannot be stored (DOMAIN §7)."""
    text = reason.strip() if isinstance(reason, str) else ""
    if (required and not text) or len(text) > 500:
        raise InvalidInput(MSG_REASON_REQUIRED)
    return check_text(text, what="The reason", allow_line_breaks=True, allow_format=True)


def validate_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 200:
        raise InvalidInput("Every change needs an idempotency key of 1–200 characters.")
    return check_text(key, what="The idempotency key")


def check_text(
    text: str,
    *,
    what: str,
    error: type[InvalidInput] = InvalidInput,
    allow_line_breaks: bool = False,
    allow_format: bool = False,
) -> str:
    """Return `text` unchanged, or raise `error` naming the first character it may not hold.
    `what` starts the message: "The question", "Outcome 2", "The reason"."""
    problem = text_problem(text, allow_line_breaks=allow_line_breaks, allow_format=allow_format)
    if problem is not None:
        position, character = problem
        raise error(
            MSG_BAD_CHARACTER.format(what=what, character=character, position=position),
            details={"position": position, "character": character},
        )
    return text
