"""Which characters a text that enters the project may hold, in one place (DOMAIN §7).

PostgreSQL cannot store NUL (U+0000) in a text column, and UTF-8 cannot encode a lone surrogate
(U+D800–U+DFFF): either one reaching the database raises an error nobody handles. Discord shows
neither. Control characters (Unicode Cc) and format characters (Cf: zero-width, bidi overrides)
are invisible or reorder what follows; DOMAIN §7 refuses them in questions and outcomes.

`text_problem` names the first character a text may not hold; `points.errors.check_text` turns that
into an `InvalidInput` whose message says which character, where, and what to do, and the admin's
list filters (`core.adminkit`) into a 400. Imports no project app.
"""

from __future__ import annotations

import unicodedata

MSG_BAD_CHARACTER = (
    "{what} contains {character} at position {position}, which can't be stored or shown; "
    "use visible text only."
)

LINE_BREAKS = frozenset("\t\n\r")
"""Control characters a multi-line text (a reason) may keep."""


def _describe(character: str) -> str:
    code = f"U+{ord(character):04X}"
    if character == "\x00":
        return f"{code} (a NUL character)"
    category = unicodedata.category(character)
    if category == "Cs":
        return f"{code} (an unpaired surrogate)"
    if category == "Cf":
        return f"{code} (an invisible formatting character)"
    return f"{code} (a control character)"


def text_problem(
    text: str, *, allow_line_breaks: bool = False, allow_format: bool = False
) -> tuple[int, str] | None:
    """The 1-based position and description of the first character `text` may not hold, or None.

    Always refused: NUL, lone surrogates and every other control character (Cc), except tab and
    line breaks when `allow_line_breaks`. Format characters (Cf) are refused unless
    `allow_format` (a free-text reason may hold an emoji joined with U+200D)."""
    for position, character in enumerate(text, start=1):
        category = unicodedata.category(character)
        if category == "Cs":
            return position, _describe(character)
        if category == "Cc" and not (allow_line_breaks and character in LINE_BREAKS):
            return position, _describe(character)
        if category == "Cf" and not allow_format:
            return position, _describe(character)
    return None


def id_from_text(text: object) -> int | None:
    """A positive id (market number, Discord snowflake) typed as text, or None.

    Only ASCII digits, at most 19 of them: `str.isdigit()` also accepts "²", which `int()`
    refuses, and `int()` refuses texts of over 4,300 digits."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not (1 <= len(text) <= 19 and text.isascii() and text.isdecimal()):
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None
