"""Discord's size limits (DOMAIN §8) and helpers that make text fit them.

Discord refuses a whole message when one part is too long, so everything the bot renders goes
through `fit` (truncate with an ellipsis) and every embed through `embed_fit` (which also keeps
the 6000-character total). Lengths are counted in UTF-16 code units, the way Discord's
JavaScript-side validation counts them: never fewer than Python's code points, so text that
fits here fits there.
"""

from __future__ import annotations

import re

import discord

NAME_RE = re.compile(r"^[-_\w]{1,32}$", re.UNICODE)
"""Command and option names (DOMAIN §8: `^[-_\\p{L}\\p{N}]{1,32}$`, lower case)."""

DESCRIPTION = 100
OPTIONS = 25
CHOICES = 25
CHOICE_NAME = 100
AUTOCOMPLETE_RESULTS = 25
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
EMBED_TOTAL = 6000
CONTENT = 2000
BUTTON_LABEL = 80
CUSTOM_ID = 100
SELECT_OPTIONS = 25
SELECT_LABEL = 100
SELECT_DESCRIPTION = 100
MODAL_TITLE = 45
INPUT_LABEL = 45
INPUT_PLACEHOLDER = 100

ELLIPSIS = "…"


def size(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units, ending in "…" when cut. Never ends in half a
    surrogate pair or a lone escaping backslash (which would escape the ellipsis)."""
    if size(text) <= limit:
        return text
    budget = limit - size(ELLIPSIS)
    out: list[str] = []
    used = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        out.append(ch)
        used += width
    cut = "".join(out)
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut + ELLIPSIS


def escape(text: str) -> str:
    """User text made inert for Discord markdown and mentions (questions are text, DOMAIN §7)."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def embed_size(embed: discord.Embed) -> int:
    """The characters Discord counts toward the 6000 total of one embed."""
    total = size(embed.title or "") + size(embed.description or "")
    total += size(embed.footer.text or "") if embed.footer else 0
    total += size(embed.author.name or "") if embed.author else 0
    for f in embed.fields:
        total += size(f.name or "") + size(f.value or "")
    return total


def embed_problems(embed: discord.Embed) -> list[str]:
    """Every DOMAIN §8 embed limit `embed` breaks (empty when it is valid)."""
    problems = []
    if size(embed.title or "") > EMBED_TITLE:
        problems.append("title")
    if size(embed.description or "") > EMBED_DESCRIPTION:
        problems.append("description")
    if len(embed.fields) > EMBED_FIELDS:
        problems.append("field count")
    for i, f in enumerate(embed.fields):
        if not f.name or size(f.name) > FIELD_NAME:
            problems.append(f"field {i} name")
        if not f.value or size(f.value) > FIELD_VALUE:
            problems.append(f"field {i} value")
    if embed.footer and size(embed.footer.text or "") > FOOTER:
        problems.append("footer")
    if embed_size(embed) > EMBED_TOTAL:
        problems.append("total")
    return problems


def embed_fit(embed: discord.Embed) -> discord.Embed:
    """Trim `embed` in place until it meets every limit: long parts are cut, surplus fields
    dropped (the footer says how many), then the description shrinks to keep the total."""
    if embed.title:
        embed.title = fit(embed.title, EMBED_TITLE)
    if embed.description:
        embed.description = fit(embed.description, EMBED_DESCRIPTION)
    if embed.footer and embed.footer.text:
        embed.set_footer(text=fit(embed.footer.text, FOOTER), icon_url=embed.footer.icon_url)
    fields = [(f.name, f.value, f.inline) for f in embed.fields]
    dropped = max(0, len(fields) - EMBED_FIELDS)
    embed.clear_fields()
    for name, value, inline in fields[:EMBED_FIELDS]:
        embed.add_field(
            name=fit(name or "\u200b", FIELD_NAME),
            value=fit(value or "\u200b", FIELD_VALUE),
            inline=inline,
        )
    while embed_size(embed) > EMBED_TOTAL and len(embed.fields) > 1:
        embed.remove_field(len(embed.fields) - 1)
        dropped += 1
    if dropped:
        note = f"{dropped} more not shown"
        text = f"{embed.footer.text} · {note}" if embed.footer and embed.footer.text else note
        embed.set_footer(text=fit(text, 200))
    excess = embed_size(embed) - EMBED_TOTAL
    if excess > 0 and embed.description:
        keep = max(1, size(embed.description) - excess)
        embed.description = fit(embed.description, keep)
    excess = embed_size(embed) - EMBED_TOTAL
    if excess > 0 and embed.title:
        embed.title = fit(embed.title, max(1, size(embed.title) - excess))
    return embed
