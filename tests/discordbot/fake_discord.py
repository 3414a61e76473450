"""A fake Discord REST API: a real aiohttp server on 127.0.0.1 that answers the routes the bot
uses the way Discord does, validates what it is sent against Discord's limits (DOMAIN §8), and
records every request.

It runs in its own thread with its own event loop, like a remote server: the bot's event loop
only ever sees HTTP. Responses carry `Content-Type: application/json` exactly (discord.py
decodes JSON only then).

It is as strict as Discord, with Discord's status codes, error codes and messages (a form error is
400, code 50035 "Invalid Form Body", with the field path in `errors`):
- interactions: the callback types each interaction type allows, one acknowledgement (40060), the
  3-second deadline counted from the interaction id's snowflake timestamp (10062), the first
  follow-up after a deferred message editing the "thinking" placeholder, tokens that expire after
  15 minutes (401, 50027);
- rate limits: per-route buckets with Discord's `X-RateLimit-*` headers, 429 bodies with
  `retry_after`, `global` and a scope, the 50 requests/second global limit, and an optional DM
  anti-spam mode (403, 40003);
- channel permissions (view 50001, send and embed links 50013) and message authorship (50005);
- payloads: content, embeds (per embed and 6,000 per message), allowed_mentions, components
  (button styles, selects, text inputs, ≤ 5 rows, ≤ 40 components, custom_id ≤ 100).
Every 401, 403 and 429 it answers is counted (`invalid_requests`): Discord bans a bot past 10,000
in 10 minutes, so the harness fails a test that causes more than its budget.

Discord's clocks (rate-limit windows, the 3-second deadline, the 15-minute token, the DM
anti-spam window, nonces) run on an injectable `Clock`: the real one (the default) for tests
about real time, or a `VirtualClock` that moves only when the test calls `advance()`, so a test
that must get past a 60-second bucket moves the clock instead of waiting a minute. What the
fake records (`Recorded.at`) stays on the real monotonic clock: it measures the bot.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import email.utils
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
APPLICATION_ID = 900_000_000_000_000_001
BOT_USER_ID = APPLICATION_ID
EPHEMERAL = 1 << 6
LOADING = 1 << 7

_counter = itertools.count(1)
_counter_lock = threading.Lock()


class Clock:
    """Discord's clock as the fake reads it: the wall clock (`time`, Unix seconds) and a
    monotonic one for windows, both moved forward together by `advance()`."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._skew = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return time.time() + self._offset + self._skew

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def skew(self, seconds: float) -> None:
        """Set how far Discord's wall clock is from the host's (`time` only: windows measured on
        the monotonic clock keep their length)."""
        with self._lock:
            self._skew = seconds


class VirtualClock(Clock):
    """A stopped clock: it moves only by `advance()`. Rate-limit buckets then refill, and
    deadlines and tokens expire, exactly when the test says, however loaded the machine is."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self._now = time.time() if start is None else start

    def time(self) -> float:
        return self._now + self._offset + self._skew

    def monotonic(self) -> float:
        return self._now + self._offset


TOKEN_LIFETIME = 15 * 60
GLOBAL_LIMIT = 50
"""Requests per second per bot, outside interaction endpoints (Discord's global limit)."""

# Per-route limits: (method, route template) → (requests, per seconds). The numbers are the ones
# Discord answers today for bots; the bucket of a route is per major parameter (channel, webhook).
ROUTE_LIMITS: dict[tuple[str, str], tuple[int, float]] = {
    ("POST", "/channels/{channel_id}/messages"): (5, 5.0),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): (5, 5.0),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): (5, 1.0),
    ("GET", "/channels/{channel_id}/messages/{message_id}"): (5, 1.0),
    ("POST", "/users/@me/channels"): (10, 10.0),
    ("POST", "/webhooks/{webhook_id}/{token}"): (5, 2.0),
    ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}"): (5, 2.0),
    ("DELETE", "/webhooks/{webhook_id}/{token}/messages/{message_id}"): (5, 2.0),
    ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}"): (5, 2.0),
    ("PUT", "/applications/{application_id}/commands"): (2, 60.0),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"): (2, 60.0),
}

# Allowed interaction callback types by interaction type (Discord's "Interaction Response Types"):
# 4 message, 5 deferred message, 6 deferred update, 7 update, 8 autocomplete result, 9 modal.
CALLBACKS_ALLOWED: dict[int, frozenset[int]] = {
    2: frozenset({4, 5, 9}),  # application command
    3: frozenset({4, 5, 6, 7, 9}),  # message component
    4: frozenset({8}),  # autocomplete
    5: frozenset({4, 5, 6, 7}),  # modal submit
}


def shard_of(guild_id: int | str, shard_count: int) -> int:
    """The shard that receives a guild's events: Discord's formula
    `shard_id = (guild_id >> 22) % num_shards`
    (https://discord.com/developers/docs/events/gateway#sharding)."""
    return (int(guild_id) >> 22) % shard_count


def snowflake(at: float | None = None) -> int:
    """A fresh Discord-style id whose timestamp is `at` (default now); ids are unique per
    process."""
    with _counter_lock:
        seq = next(_counter)
    when = time.time() if at is None else at
    return ((int(when * 1000) - DISCORD_EPOCH_MS) << 22) | (seq % (1 << 22))


def snowflake_time(value: int | str) -> float:
    """The Unix time a snowflake was created at (its top 42 bits, in ms since Discord's epoch)."""
    return ((int(value) >> 22) + DISCORD_EPOCH_MS) / 1000


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Recorded:
    """One request the fake received, and what it answered."""

    seq: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0
    response: Any = None

    @property
    def is_callback(self) -> bool:
        return self.path.endswith("/callback") and self.path.startswith("/interactions/")


@dataclass
class InteractionState:
    id: int
    token: str
    payload: dict
    fed_at: float
    created_at: float = 0.0
    """Unix time of the interaction id's snowflake: Discord's clocks run from it."""
    callback_type: int | None = None
    callback_at: float | None = None
    original_id: int | None = None
    original_deleted: bool = False
    followups: list[int] = field(default_factory=list)
    last_request_at: float | None = None


class Rejected(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def _nest(path: str, leaf: dict) -> dict:
    """Discord nests form errors by field path: `embeds.0.title` →
    {"embeds": {"0": {"title": {"_errors": [...]}}}} (discord.py flattens it back)."""
    if not path:
        return leaf
    out: dict = leaf
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def _invalid(path: str, problem: str, code: str = "BASE_TYPE_INVALID") -> Rejected:
    return Rejected(
        400,
        {
            "code": 50035,
            "message": "Invalid Form Body",
            "errors": _nest(path, {"_errors": [{"code": code, "message": problem}]}),
        },
    )


def error_paths(body: dict) -> list[str]:
    """The field paths of a 50035 body (`embeds.0.title`), for tests."""
    found: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_errors":
                    found.append(prefix)
                else:
                    walk(value, f"{prefix}.{key}" if prefix else key)

    walk(body.get("errors") or {}, "")
    return found


MISSING_ACCESS = {"code": 50001, "message": "Missing Access"}
MISSING_PERMISSIONS = {"code": 50013, "message": "Missing Permissions"}
THREAD_ALREADY_CREATED = {
    "code": 160004,
    "message": "A thread has already been created for this message",
}
NOT_AUTHOR = {"code": 50005, "message": "Cannot edit a message authored by another user"}
ALREADY_ACKNOWLEDGED = {"code": 40060, "message": "Interaction has already been acknowledged."}
UNKNOWN_INTERACTION = {"code": 10062, "message": "Unknown interaction"}
UNKNOWN_WEBHOOK = {"code": 10015, "message": "Unknown Webhook"}
INVALID_WEBHOOK_TOKEN = {"code": 50027, "message": "Invalid Webhook Token"}
NONCE_SECONDS = 300.0
"""How long Discord remembers an enforced nonce ("the past few minutes")."""
DM_TOO_FAST = {"code": 40003, "message": "You are opening direct messages too fast."}


# --- Transport faults (issue 27): the request took effect, the connection broke -------------

RESET = "reset"
"""`lose(..., status=RESET)`: the connection is reset (RST) instead of answered, so the bot's
HTTP client reads "connection reset by peer" rather than a clean close."""


def _reset(request: Any) -> None:
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()


# --- Discord's limits, written independently of the bot's own checks ------------------------


def embed_size(embed: dict) -> int:
    """The characters Discord counts towards the 6,000 per message."""
    fields = embed.get("fields") or []
    texts = [embed.get("title"), embed.get("description")]
    texts += [(embed.get("footer") or {}).get("text"), (embed.get("author") or {}).get("name")]
    texts += [f.get(k) for f in fields for k in ("name", "value")]
    return sum(utf16(t or "") for t in texts)


def check_embed(embed: dict, where: str) -> None:
    for key, limit in (("title", 256), ("description", 4096)):
        if utf16(embed.get(key) or "") > limit:
            raise _invalid(f"{where}.{key}", f"Must be {limit} or fewer in length.")
    fields = embed.get("fields") or []
    if len(fields) > 25:
        raise _invalid(f"{where}.fields", "Must be 25 or fewer in length.")
    for i, f in enumerate(fields):
        name, value = f.get("name") or "", f.get("value") or ""
        if not name or utf16(name) > 256:
            raise _invalid(f"{where}.fields.{i}.name", "Must be between 1 and 256 in length.")
        if not value or utf16(value) > 1024:
            raise _invalid(f"{where}.fields.{i}.value", "Must be between 1 and 1024 in length.")
    if utf16((embed.get("footer") or {}).get("text") or "") > 2048:
        raise _invalid(f"{where}.footer.text", "Must be 2048 or fewer in length.")
    if utf16((embed.get("author") or {}).get("name") or "") > 256:
        raise _invalid(f"{where}.author.name", "Must be 256 or fewer in length.")


def check_allowed_mentions(value: Any) -> None:
    """Discord's allowed_mentions object: `parse` of "roles"/"users"/"everyone", at most 100
    `users` and `roles`, and a type named in `parse` never also listed explicitly."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise _invalid("allowed_mentions", "Must be an object.", "MODEL_TYPE_CONVERT")
    parse = value.get("parse") or []
    for i, kind in enumerate(parse):
        if kind not in ("roles", "users", "everyone"):
            raise _invalid(
                f"allowed_mentions.parse.{i}",
                "Value must be one of ('roles', 'users', 'everyone').",
                "BASE_TYPE_CHOICES",
            )
    for key in ("users", "roles"):
        ids = value.get(key) or []
        if len(ids) > 100:
            raise _invalid(f"allowed_mentions.{key}", "Must be 100 or fewer in length.")
        for i, item in enumerate(ids):
            if not str(item).isdigit():
                raise _invalid(f"allowed_mentions.{key}.{i}", "Value is not snowflake.")
        if ids and key in parse:
            raise _invalid(
                "allowed_mentions",
                f'parse:["{key}"] and {key}: [ids...] are mutually exclusive.',
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
            )
    if "replied_user" in value and not isinstance(value["replied_user"], bool):
        raise _invalid("allowed_mentions.replied_user", "Must be a boolean.")


def _check_custom_id(custom_id: Any, path: str, seen: set[str]) -> None:
    if not isinstance(custom_id, str) or not 1 <= utf16(custom_id) <= 100:
        raise _invalid(f"{path}.custom_id", "Must be between 1 and 100 in length.")
    if custom_id in seen:
        raise _invalid(
            f"{path}.custom_id",
            "Component custom id cannot be duplicated",
            "COMPONENT_CUSTOM_ID_DUPLICATED",
        )
    seen.add(custom_id)


def check_button(comp: dict, path: str, seen: set[str]) -> None:
    """Link buttons (style 5) carry a url and no custom_id; premium buttons (6) a sku_id; the
    others a custom_id and no url. A button shows a label or an emoji (label ≤ 80)."""
    style = comp.get("style")
    if style not in (1, 2, 3, 4, 5, 6):
        raise _invalid(f"{path}.style", "Value must be one of (1, 2, 3, 4, 5, 6).")
    if style == 5:
        if not comp.get("url"):
            raise _invalid(f"{path}.url", "This field is required", "BASE_TYPE_REQUIRED")
        if comp.get("custom_id") is not None:
            raise _invalid(
                f"{path}.custom_id",
                "A link button cannot have a custom id",
                "BUTTON_LINK_CUSTOM_ID",
            )
    elif style != 6:
        if comp.get("custom_id") is None:
            raise _invalid(f"{path}.custom_id", "This field is required", "BASE_TYPE_REQUIRED")
        if comp.get("url") is not None:
            raise _invalid(f"{path}.url", "Only link buttons can have a url")
        _check_custom_id(comp["custom_id"], path, seen)
    if utf16(comp.get("label") or "") > 80:
        raise _invalid(f"{path}.label", "Must be 80 or fewer in length.")
    if style != 6 and not (comp.get("label") or comp.get("emoji")):
        raise _invalid(f"{path}.label", "A button needs a label or an emoji")


def check_select(comp: dict, path: str, seen: set[str]) -> None:
    """Selects: placeholder ≤ 150, 0 ≤ min_values ≤ max_values ≤ 25; a string select has 1–25
    options (label and value 1–100, description ≤ 100) and max_values ≤ its options."""
    _check_custom_id(comp.get("custom_id"), path, seen)
    if utf16(comp.get("placeholder") or "") > 150:
        raise _invalid(f"{path}.placeholder", "Must be 150 or fewer in length.")
    low, high = comp.get("min_values", 1), comp.get("max_values", 1)
    if not 0 <= low <= 25:
        raise _invalid(f"{path}.min_values", "Must be between 0 and 25.")
    if not 1 <= high <= 25 or high < low:
        raise _invalid(f"{path}.max_values", "Must be between 1 and 25, and ≥ min_values.")
    if comp.get("type") != 3:
        return
    options = comp.get("options") or []
    if not 1 <= len(options) <= 25:
        raise _invalid(f"{path}.options", "Must be between 1 and 25 in length.")
    if high > len(options):
        raise _invalid(f"{path}.max_values", "Must be less than or equal to the options count.")
    values: set[str] = set()
    for o, opt in enumerate(options):
        if not 1 <= utf16(opt.get("label") or "") <= 100:
            raise _invalid(f"{path}.options.{o}.label", "Must be between 1 and 100 in length.")
        if utf16(opt.get("description") or "") > 100:
            raise _invalid(f"{path}.options.{o}.description", "Must be 100 or fewer in length.")
        value = opt.get("value") or ""
        if not 1 <= utf16(value) <= 100:
            raise _invalid(f"{path}.options.{o}.value", "Must be between 1 and 100 in length.")
        if value in values:
            raise _invalid(f"{path}.options.{o}.value", "Select option values must be unique")
        values.add(value)


def check_text_input(item: dict, path: str, seen: set[str]) -> None:
    """Text inputs: style 1 or 2, 0 ≤ min_length ≤ 4000, 1 ≤ max_length ≤ 4000, min ≤ max,
    value and placeholder within bounds (label ≤ 45 where the input carries one)."""
    _check_custom_id(item.get("custom_id"), path, seen)
    if item.get("style", 1) not in (1, 2):
        raise _invalid(f"{path}.style", "Value must be one of (1, 2).")
    low, high = item.get("min_length", 0), item.get("max_length", 4000)
    if not 0 <= low <= 4000:
        raise _invalid(f"{path}.min_length", "Must be between 0 and 4000.")
    if not 1 <= high <= 4000 or high < low:
        raise _invalid(f"{path}.max_length", "Must be between 1 and 4000, and ≥ min_length.")
    if item.get("label") is not None and not 1 <= utf16(item["label"]) <= 45:
        raise _invalid(f"{path}.label", "Must be between 1 and 45 in length.")
    if utf16(item.get("placeholder") or "") > 100:
        raise _invalid(f"{path}.placeholder", "Must be 100 or fewer in length.")
    value = item.get("value")
    if value is not None and not low <= utf16(value) <= high:
        raise _invalid(f"{path}.value", f"Must be between {low} and {high} in length.")


def check_components(rows: list, where: str = "components") -> None:
    """Messages: at most 5 action rows of 1–5 buttons or one select; 40 components in all
    (rows count); custom ids unique within the message."""
    total = len(rows) + sum(len(r.get("components") or []) for r in rows)
    if total > 40:
        raise _invalid(where, "The total number of components must be 40 or fewer.")
    if len(rows) > 5:
        raise _invalid(where, "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        if row.get("type") != 1:
            raise _invalid(f"{where}.{r}", "Top-level components must be action rows.")
        children = row.get("components") or []
        if not 1 <= len(children) <= 5:
            raise _invalid(f"{where}.{r}.components", "Must be between 1 and 5 in length.")
        if any(c.get("type") != 2 for c in children) and len(children) != 1:
            raise _invalid(f"{where}.{r}.components", "A select menu fills its row.")
        for c, comp in enumerate(children):
            path = f"{where}.{r}.components.{c}"
            if comp.get("type") == 2:
                check_button(comp, path, seen)
            elif comp.get("type") in (3, 5, 6, 7, 8):
                check_select(comp, path, seen)
            else:
                raise _invalid(f"{path}.type", "This component type is not allowed in a message.")


def check_message(data: dict, *, editing: bool = False) -> None:
    content = data.get("content")
    if content is not None and utf16(content) > 2000:
        raise _invalid("content", "Must be 2000 or fewer in length.")
    embeds = data.get("embeds") or []
    if len(embeds) > 10:
        raise _invalid("embeds", "Must be 10 or fewer in length.")
    for i, embed in enumerate(embeds):
        check_embed(embed, f"embeds.{i}")
    if sum(embed_size(e) for e in embeds) > 6000:
        raise _invalid(
            "embeds", "Embed size exceeds maximum size of 6000", "MAX_EMBED_SIZE_EXCEEDED"
        )
    check_allowed_mentions(data.get("allowed_mentions"))
    check_components(data.get("components") or [])
    nonce = data.get("nonce")
    if nonce is not None and len(str(nonce)) > 25:
        raise _invalid("nonce", "Must be 25 or fewer in length.")
    if not editing and not (content or embeds or data.get("components")):
        raise Rejected(400, {"code": 50006, "message": "Cannot send an empty message"})


def check_modal(data: dict) -> None:
    title = data.get("title") or ""
    if not 1 <= utf16(title) <= 45:
        raise _invalid("data.title", "Must be between 1 and 45 in length.")
    if not 1 <= utf16(data.get("custom_id") or "") <= 100:
        raise _invalid("data.custom_id", "Must be between 1 and 100 in length.")
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        raise _invalid("data.components", "Must be between 1 and 5 in length.")
    seen: set[str] = set()
    for i, comp in enumerate(components):
        path = f"data.components.{i}"
        if comp.get("type") == 18:
            if not 1 <= utf16(comp.get("label") or "") <= 45:
                raise _invalid(f"{path}.label", "Must be between 1 and 45 in length.")
            if utf16(comp.get("description") or "") > 100:
                raise _invalid(f"{path}.description", "Must be 100 or fewer in length.")
            inputs = [(f"{path}.component", comp.get("component") or {})]
        elif comp.get("type") == 1:
            children = comp.get("components") or []
            if len(children) != 1:
                raise _invalid(f"{path}.components", "Must be 1 in length.")
            inputs = [(f"{path}.components.0", children[0])]
        else:
            raise _invalid(f"{path}.type", "This component type is not allowed in a modal.")
        for where, item in inputs:
            if item.get("type") == 4:
                check_text_input(item, where, seen)
            elif item.get("type") in (3, 5, 6, 7, 8) and comp.get("type") == 18:
                check_select(item, where, seen)
            else:
                raise _invalid(f"{where}.type", "This component type is not allowed here.")


def _name_ok(name: str) -> bool:
    return (
        1 <= len(name) <= 32
        and name == name.lower()
        and all(ch in "-_" or ch.isalnum() for ch in name)
    )


def check_command(cmd: dict, where: str) -> None:
    """Discord's command rules (DOMAIN §8): names, descriptions, ≤ 25 options and choices,
    required options first, and the 4000-character total per command."""
    if cmd.get("type", 1) in (USER_COMMAND, MESSAGE_COMMAND):
        check_context_menu(cmd, where)
        return
    if not _name_ok(cmd.get("name", "")):
        raise _invalid(f"{where}.name", "Command name is invalid")
    if cmd.get("type", 1) == 1 and not 1 <= utf16(cmd.get("description") or "") <= 100:
        raise _invalid(f"{where}.description", "Must be between 1 and 100 in length.")
    check_command_meta(cmd, where)
    total = utf16(cmd["name"]) + utf16(cmd.get("description") or "")

    def options(opts: list, path: str, depth: int) -> int:
        if len(opts) > 25:
            raise _invalid(path, "Must be 25 or fewer in length.")
        size = 0
        optional_seen = False
        names = set()
        for i, opt in enumerate(opts):
            p = f"{path}.{i}"
            if not _name_ok(opt.get("name", "")):
                raise _invalid(f"{p}.name", "Option name is invalid")
            if opt["name"] in names:
                raise _invalid(f"{p}.name", "Option names must be unique")
            names.add(opt["name"])
            if not 1 <= utf16(opt.get("description") or "") <= 100:
                raise _invalid(f"{p}.description", "Must be between 1 and 100 in length.")
            size += utf16(opt["name"]) + utf16(opt["description"])
            if opt.get("type") in (1, 2):
                if depth >= 2:
                    raise _invalid(p, "Subcommands nest at most two levels")
                size += options(opt.get("options") or [], f"{p}.options", depth + 1)
                continue
            check_option_rules(opt, p)
            if opt.get("required"):
                if optional_seen:
                    raise _invalid(p, "Required options must be placed before non-required")
            else:
                optional_seen = True
            choices = opt.get("choices") or []
            if len(choices) > 25:
                raise _invalid(f"{p}.choices", "Must be 25 or fewer in length.")
            if choices and opt.get("autocomplete"):
                raise _invalid(p, "Autocomplete and choices are mutually exclusive")
            for c, choice in enumerate(choices):
                if not 1 <= utf16(choice.get("name") or "") <= 100:
                    raise _invalid(f"{p}.choices.{c}.name", "Must be 1 to 100 long.")
                size += utf16(choice["name"]) + utf16(str(choice.get("value")))
            if opt.get("type") == 3:
                low, high = opt.get("min_length", 0), opt.get("max_length", 6000)
                if not 0 <= low <= high <= 6000:
                    raise _invalid(p, "String length bounds are invalid")
        return size

    total += options(cmd.get("options") or [], f"{where}.options", 0)
    if total > 4000:
        raise _invalid(where, "Command exceeds maximum size (4000)")


# --- Issue 26: context menu commands (kept apart for merging) ----------------------------------
# Discord's "Application Command Object" (docs/discord.md cites the page): a USER (2) or MESSAGE
# (3) command's name is 1–32 characters and may use capitals and spaces (it is what the menu
# shows); its description is the empty string and it takes no options; an application has at
# most 5 of each type (global, and per guild).

USER_COMMAND, MESSAGE_COMMAND = 2, 3
CONTEXT_MENU_NAME = re.compile(r"^[-_ \w]{1,32}$", re.UNICODE)
CONTEXT_MENUS_PER_TYPE = 5


def check_context_menu(cmd: dict, where: str) -> None:
    name = cmd.get("name", "")
    if not isinstance(name, str) or not CONTEXT_MENU_NAME.fullmatch(name) or name != name.strip():
        raise _invalid(
            f"{where}.name", "Must be between 1 and 32 in length.", "BASE_TYPE_BAD_LENGTH"
        )
    if cmd.get("description"):
        raise _invalid(f"{where}.description", "Context menu commands cannot have a description")
    if cmd.get("options"):
        raise _invalid(f"{where}.options", "Context menu commands cannot have options")
    check_command_meta(cmd, where)


def check_context_menu_count(commands: list[dict]) -> None:
    for kind in (USER_COMMAND, MESSAGE_COMMAND):
        if sum(1 for c in commands if c.get("type") == kind) > CONTEXT_MENUS_PER_TYPE:
            raise _invalid("", f"Maximum number of type {kind} commands reached (5)")


def check_choices(data: dict) -> None:
    choices = data.get("choices") or []
    if len(choices) > 25:
        raise _invalid("data.choices", "Must be 25 or fewer in length.")
    for i, c in enumerate(choices):
        if not 1 <= utf16(c.get("name") or "") <= 100:
            raise _invalid(f"data.choices.{i}.name", "Must be between 1 and 100 in length.")
        if utf16(str(c.get("value"))) > 100:
            raise _invalid(f"data.choices.{i}.value", "Must be 100 or fewer in length.")


# --- Issue 23 item 20: definitions and payloads Discord refuses (kept apart for merging) ---------
# Discord's "Application Command Option Structure" and "Application Command Object"
# (https://discord.com/developers/docs/interactions/application-commands): min_value/max_value
# only on INTEGER/NUMBER and within -2^53..2^53; min_length/max_length only on STRING;
# channel_types only on CHANNEL; autocomplete only on STRING, INTEGER or NUMBER; a choice's value
# has the option's type; `contexts` lists interaction context types 0 (guild), 1 (bot DM),
# 2 (private channel); `integration_types` 0 (guild install), 1 (user install);
# `default_member_permissions` is a bit set serialized as a string. Each refusal is 400/50035.
# Codes in the `_errors` entries follow Discord's form-error names (BASE_TYPE_*, NUMBER_TYPE_*).

STRING, INTEGER, BOOLEAN, CHANNEL, NUMBER = 3, 4, 5, 7, 10
INVALID_JSON = "The request body contains invalid JSON."
NUMBER_LIMIT = 2**53
CHOICE_TYPES: dict[int, tuple[type, ...]] = {STRING: (str,), INTEGER: (int,), NUMBER: (int, float)}


def _is_number(value: Any, kind: int) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (kind == NUMBER and isinstance(value, float))


def check_option_rules(opt: dict, p: str) -> None:
    """The per-type rules of one (non-subcommand) option definition."""
    kind = opt.get("type")
    for key in ("min_value", "max_value"):
        if key not in opt or opt[key] is None:
            continue
        if kind not in (INTEGER, NUMBER):
            raise _invalid(f"{p}.{key}", "Only integer and number options take a value range.")
        if not _is_number(opt[key], kind):
            raise _invalid(f"{p}.{key}", "Must be a number.", "NUMBER_TYPE_COERCE")
        if not -NUMBER_LIMIT <= opt[key] <= NUMBER_LIMIT:
            code = "NUMBER_TYPE_MAX" if opt[key] > 0 else "NUMBER_TYPE_MIN"
            raise _invalid(
                f"{p}.{key}", f"Must be between -{NUMBER_LIMIT} and {NUMBER_LIMIT}.", code
            )
    low, high = opt.get("min_value"), opt.get("max_value")
    if low is not None and high is not None and low > high:
        raise _invalid(f"{p}.min_value", "min_value must be less than or equal to max_value")
    for key in ("min_length", "max_length"):
        if key in opt and kind != STRING:
            raise _invalid(f"{p}.{key}", "Only string options take a length range.")
    if "channel_types" in opt and kind != CHANNEL:
        raise _invalid(f"{p}.channel_types", "Only channel options take channel types.")
    if opt.get("autocomplete") and kind not in (STRING, INTEGER, NUMBER):
        raise _invalid(f"{p}.autocomplete", "Autocomplete is only for string, integer or number.")
    wanted = CHOICE_TYPES.get(kind)
    for c, choice in enumerate(opt.get("choices") or []):
        value = choice.get("value")
        if wanted is None or isinstance(value, bool) or not isinstance(value, wanted):
            raise _invalid(f"{p}.choices.{c}.value", "Choice value does not match the option type.")


def check_command_meta(cmd: dict, where: str) -> None:
    """`contexts`, `integration_types` and `default_member_permissions` of a command."""
    for key, allowed in (("contexts", {0, 1, 2}), ("integration_types", {0, 1})):
        value = cmd.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not value:
            raise _invalid(f"{where}.{key}", "Must be a non-empty array.", "BASE_TYPE_BAD_LIST")
        for i, item in enumerate(value):
            if isinstance(item, bool) or item not in allowed:
                raise _invalid(f"{where}.{key}.{i}", f"Value must be one of {sorted(allowed)}.")
    # A bit set serialized as a string; Discord also coerces a JSON integer (discord.py 2.x
    # sends one, and Discord takes it), but nothing else: a float, a bool, a list, words.
    perms = cmd.get("default_member_permissions")
    whole = isinstance(perms, int) and not isinstance(perms, bool) and perms >= 0
    if perms is not None and not (whole or (isinstance(perms, str) and perms.isdigit())):
        raise _invalid(
            f"{where}.default_member_permissions", "Must be a permission bit set as a string."
        )


def _focused_type(payload: dict) -> int | None:
    def walk(options: list) -> int | None:
        for opt in options or []:
            if opt.get("focused"):
                return int(opt.get("type", STRING))
            found = walk(opt.get("options") or [])
            if found is not None:
                return found
        return None

    return walk((payload.get("data") or {}).get("options") or [])


def check_choice_types(payload: dict, data: dict) -> None:
    """Autocomplete choices carry values of the focused option's type."""
    wanted = CHOICE_TYPES.get(_focused_type(payload) or STRING, (str,))
    for i, choice in enumerate(data.get("choices") or []):
        value = choice.get("value")
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise _invalid(
                f"data.choices.{i}.value", "Choice value does not match the option type."
            )


def check_defer_flags(data: dict) -> None:
    """A deferred message response takes only the EPHEMERAL flag."""
    flags = data.get("flags") or 0
    if not isinstance(flags, int) or isinstance(flags, bool) or flags & ~EPHEMERAL:
        raise _invalid("data.flags", "Only EPHEMERAL may be set on a deferred response.")


def check_body_type(method: str, path: str, body: Any) -> None:
    """A JSON body of the wrong type is a form error (400/50035), never a 500: a command sync
    takes an array, every other body an object."""
    if method not in ("POST", "PUT", "PATCH") or body is None:
        return
    want = list if method == "PUT" and path.endswith("/commands") else dict
    if not isinstance(body, want):
        raise _invalid("", f"Expected an {'array' if want is list else 'object'}.", "BASE_TYPE_BAD")
    if isinstance(body, dict):
        data = body.get("data") if path.endswith("/callback") else body
        if not isinstance(data, dict):
            if data is None:
                return
            raise _invalid("data", "Expected an object.", "DICT_TYPE_CONVERT")
        for key, kind in (("content", str), ("embeds", list), ("components", list)):
            if data.get(key) is not None and not isinstance(data[key], kind):
                raise _invalid(key, f"Expected a {kind.__name__}.", "BASE_TYPE_BAD")
        flags = data.get("flags")
        if flags is not None and (isinstance(flags, bool) or not isinstance(flags, int)):
            raise _invalid("flags", "Must be an integer.", "NUMBER_TYPE_COERCE")


# --- Issue 23 item 16: role mentions (kept apart for merging) -----------------------------------
# A role mention in a message notifies the role only if the role is mentionable or the sender
# has MENTION_EVERYONE (Discord's "Permissions" topic; the Role object's `mentionable`), and
# only if `allowed_mentions` lets it through. The message's `mention_roles` lists who was pinged.

MENTION_EVERYONE = 1 << 17
MANAGE_ROLES = 1 << 28
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def pinged_roles(
    content: str, allowed: Any, mentionable: dict[int, bool], sender_mentions_everyone: bool
) -> list[str]:
    """The role ids a message's content notifies, as Discord resolves them."""
    named = [int(m) for m in _ROLE_MENTION.findall(content or "")]
    if isinstance(allowed, dict):
        if "roles" in (allowed.get("parse") or []):
            permitted = set(named)
        else:
            permitted = {int(r) for r in allowed.get("roles") or []}
    else:
        permitted = set(named)  # no allowed_mentions: everything in the content may ping
    out = []
    for role_id in named:
        may = mentionable.get(role_id, True) or sender_mentions_everyone
        if role_id in permitted and may and str(role_id) not in out:
            out.append(str(role_id))
    return out


# --- The server ------------------------------------------------------------------------------


class FakeDiscord:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        deadline: float = 3.0,
        gateway_delay: float = 0.3,
        route_limits: dict[tuple[str, str], tuple[int, float]] | None = None,
        global_limit: int = GLOBAL_LIMIT,
        clock: Clock | None = None,
        gateway: bool = False,
    ) -> None:
        self.clock = clock or Clock()
        """Discord's clock (buckets, deadlines, token lifetimes, anti-spam, nonces)."""
        self.latency = latency
        self.deadline = deadline
        self.gateway_delay = gateway_delay
        """Seconds between Discord creating an interaction and the bot seeing it (the harness
        dates interaction ids that far back)."""
        self.route_limits = dict(ROUTE_LIMITS if route_limits is None else route_limits)
        self.global_limit = global_limit
        self.buckets: dict[tuple[str, str], list[float]] = {}
        """(route, major parameter) → times of the requests counted in the current window."""
        self.global_window: list[float] = []
        self.channel_permissions: dict[int, dict[str, bool]] = {}
        self.threads: dict[int, dict] = {}
        """Threads started from messages (issue 26), by id (= the message's id)."""
        self.channel_guilds: dict[int, int] = {}
        self.dm_spam: tuple[int, float] | None = None
        """(new DM channels, per seconds) before 403 40003; None = off."""
        self.dm_opened: list[float] = []
        self.injected: set[int] = set()
        """Seqs of responses a test asked for with `fail()` (not counted as invalid)."""
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        """Notified after every request the fake answers (`wait_for`)."""
        self.gateway = gateway
        """Serve a gateway (`/gateway`): READY and GUILD_CREATE on IDENTIFY, heartbeat ACKs,
        and `dispatch()` — for a bot in another process. Off: `/gateway/bot` names a closed
        port, and the bot logs in but never connects (the harness feeds events itself)."""
        self.gateway_guilds: list[dict] = []
        """GUILD_CREATE payloads sent after READY."""
        self.gateway_ready = threading.Event()
        """Set when a bot has identified and received READY and its guilds."""
        self._sockets: list[web.WebSocketResponse] = []
        self._shards: dict[int, tuple[int, int]] = {}
        """id(socket) → (shard id, shard count) it identified with."""
        self._gateway_seq = itertools.count(1)
        self.requests: list[Recorded] = []
        self.rejections: list[Recorded] = []
        self.interactions: dict[str, InteractionState] = {}
        self.messages: dict[int, dict] = {}
        self.files: dict[int, bytes] = {}
        """Uploaded attachments by attachment id (the message's `attachments` list names them)."""
        self.channel_messages: dict[int, list[int]] = defaultdict(list)
        self.dm_channels: dict[int, int] = {}
        self.dm_recipients: dict[int, int] = {}
        self.closed_dms: set[int] = set()
        self.commands: dict[int | None, list[dict]] = {}
        self.lenient: set[str] = set()
        """Tokens whose repeated callbacks are accepted (to let twin deliveries both reach the
        database and prove the idempotency key, not the acknowledgement, stops the repeat)."""
        self.failures: list[tuple[Callable[[str, str], bool], int, dict, int]] = []
        self.failure_headers: dict[int, dict[str, str]] = {}
        self.nonces: dict[tuple[int, str], tuple[float, int]] = {}
        """(channel, nonce) → (when, message id) of messages sent with `enforce_nonce`."""
        self.gates: list[tuple[Callable[[str, str], bool], threading.Event, threading.Event]] = []
        self.losses: list[tuple[Callable[[str, str], bool], int | None, int]] = []
        """`lose()`: requests processed as usual whose response never reaches the bot."""
        self.lost: list[Recorded] = []
        self.role_mentionable: dict[int, bool] = {}
        """Role id → mentionable (`know_roles`); unknown roles count as mentionable."""
        self.bot_mentions_everyone = False
        self.role_position: dict[int, int] = {}
        self.bot_manages_roles = False
        self.bot_top_position = 0
        self.member_roles: dict[int, set[int]] = {}
        """Roles the bot gave, by member (`PUT /guilds/{g}/members/{u}/roles/{r}`)."""
        self.bot_user = {
            "id": str(BOT_USER_ID),
            "username": "Prediction Markets",
            "discriminator": "0",
            "global_name": "Prediction Markets",
            "avatar": None,
            "bot": True,
            "flags": 0,
        }
        self._seq = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- Lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on a free port of 127.0.0.1; returns the API base URL."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-discord", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self.base_url

    async def _serve(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._discord_date)
        # A stop does not wait for requests in flight (a held or slow one): `_shutdown` cancels
        # them after half a second.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}{API_PREFIX}"

    async def _shutdown(self) -> None:
        """Stop serving and finish every task of the fake's loop, as `asyncio.run` does: a
        handler still pending when the loop closes (held by a gate, a client gone) would be
        destroyed pending whenever the garbage collector gets to it — an ERROR log line in
        whatever test runs then (the Sentry tests counted it as an event)."""
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()

    def stop(self) -> None:
        for _, gate, _ in list(self.gates):
            gate.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # --- Fault injection and gates -----------------------------------------------------------

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        body: dict,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests matching `method` and the path regex get `status` (with
        `headers`, e.g. a 429's `Retry-After` and `Via`)."""
        rx = re.compile(pattern)
        with self.lock:
            self.failures.append(
                (lambda m, p: m == method and bool(rx.search(p)), status, body, times)
            )
            if headers:
                self.failure_headers[id(self.failures[-1][0])] = dict(headers)

    def lose(
        self, method: str, pattern: str, *, status: int | str | None = 500, times: int = 1
    ) -> None:
        """Processed but the response lost: the next `times` requests matching `method` and the
        path regex take effect as usual (an acknowledgement counts, an edit shows), but the bot
        gets `status` instead of the answer (500: discord.py retries after a second, and a
        repeated acknowledgement then meets 40060) — or, with `status=None`, the connection is
        closed without any answer, with `status=RESET` reset (see "Transport faults")."""
        rx = re.compile(pattern)
        with self.lock:
            self.losses.append((lambda m, p: m == method and bool(rx.search(p)), status, times))

    def gate(self, method: str, pattern: str) -> tuple[threading.Event, threading.Event]:
        """Hold the first matching request until `release.set()`; `arrived` is set when it
        arrives. A held request that is released is answered 503 and changes nothing (the
        client is usually gone by then: a crash in the middle)."""
        rx = re.compile(pattern)
        release, arrived = threading.Event(), threading.Event()
        with self.lock:
            self.gates.append((lambda m, p: m == method and bool(rx.search(p)), release, arrived))
        return release, arrived

    # --- Interaction bookkeeping (called by the harness before feeding a payload) ------------

    def register_interaction(self, payload: dict) -> None:
        """Start the 3-second clock of an interaction. The same interaction delivered again
        keeps its state, so Discord's "already acknowledged" applies to the second answer."""
        with self.lock:
            if payload["token"] in self.interactions:
                return
            if payload.get("guild_id") and payload.get("channel_id"):
                self.channel_guilds[int(payload["channel_id"])] = int(payload["guild_id"])
            self.interactions[payload["token"]] = InteractionState(
                id=int(payload["id"]),
                token=payload["token"],
                payload=payload,
                fed_at=time.monotonic(),
                created_at=snowflake_time(payload["id"]),
            )

    def now(self) -> float:
        """Discord's wall clock (Unix time), moved forward by `advance()`."""
        return self.clock.time()

    def advance(self, seconds: float) -> None:
        """Move Discord's clock forward: interaction deadlines, token lifetimes, rate-limit
        windows, the DM anti-spam window and nonces all see the time pass."""
        with self.lock:
            self.clock.advance(seconds)

    def set_permissions(
        self,
        channel_id: int,
        *,
        view: bool = True,
        send: bool = True,
        embed_links: bool = True,
        create_threads: bool = True,
        send_in_threads: bool = True,
    ) -> None:
        """The bot's permissions in a channel (every channel allows everything by default);
        a thread has its parent channel's."""
        with self.lock:
            self.channel_permissions[int(channel_id)] = {
                "view": view,
                "send": send,
                "embed_links": embed_links,
                "create_threads": create_threads,
                "send_in_threads": send_in_threads,
            }

    # --- Issue 23 item 15: Discord's clock, apart from the host's (kept apart for merging) --------

    def skew_host(self, seconds: float) -> None:
        """Make the host's clock `seconds` ahead of Discord's (negative: behind): Discord's clock
        (`now()`: interaction ids, deadlines, `Date` and `X-RateLimit-Reset`) runs that much
        behind the host's `time.time()`."""
        with self.lock:
            self.clock.skew(-float(seconds))

    async def _discord_date(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer carries Discord's `Date` (whole seconds, RFC 9110), on its clock."""
        response.headers["Date"] = email.utils.formatdate(self.now(), usegmt=True)

    def know_roles(self, roles: Any, *, bot_roles: Any = ()) -> None:
        """The guild's roles (their `mentionable`) and the bot's own roles (their permissions:
        Mention Everyone), as the harness's GUILD_CREATE describes them (issue 23 item 16)."""
        with self.lock:
            for role in roles:
                self.role_mentionable[int(role.id)] = bool(role.mentionable)
            self.bot_mentions_everyone = any(
                int(getattr(r.permissions, "value", 0)) & MENTION_EVERYONE for r in bot_roles
            )
            # Issue 26: who may give which role (Manage Roles, below the bot's highest role).
            for role in [*roles, *bot_roles]:
                self.role_position[int(role.id)] = int(getattr(role, "position", 1))
            self.bot_manages_roles = any(
                int(getattr(r.permissions, "value", 0)) & MANAGE_ROLES for r in bot_roles
            )
            self.bot_top_position = max(
                (int(getattr(r, "position", 1)) for r in bot_roles), default=0
            )

    def anti_spam(self, new_channels: int, per: float) -> None:
        """Discord's DM anti-spam: after `new_channels` new DM channels within `per` seconds,
        opening another answers 403 40003."""
        with self.lock:
            self.dm_spam = (new_channels, per)

    def post_as(self, channel_id: int, author: dict, content: str) -> dict:
        """A message somebody else wrote in a channel (the bot may not edit it)."""
        with self.lock:
            msg = self._new_message(channel_id, {"content": content})
            msg["author"] = author
            msg.pop("application_id", None)
            return msg

    # --- Views for tests ---------------------------------------------------------------------

    def message(self, message_id: int) -> dict | None:
        with self.lock:
            return self.messages.get(int(message_id))

    def channel_posts(self, channel_id: int) -> list[dict]:
        with self.lock:
            return [self.messages[i] for i in self.channel_messages.get(int(channel_id), [])]

    def dms(self, user_id: int) -> list[dict]:
        with self.lock:
            channel = self.dm_channels.get(int(user_id))
            return [] if channel is None else self.channel_posts(channel)

    def dm_channel_for(self, user_id: int) -> int:
        """The DM channel the fake gives `user_id` (created now if needed)."""
        with self.lock:
            channel_id = self.dm_channels.setdefault(int(user_id), snowflake())
            self.dm_recipients[channel_id] = int(user_id)
            return channel_id

    def requests_matching(self, method: str, pattern: str) -> list[Recorded]:
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if r.method == method and rx.search(r.path)]

    # --- Helpers -----------------------------------------------------------------------------

    def _now_iso(self) -> str:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.UTC).isoformat()

    def _new_message(self, channel_id: int, data: dict, *, flags: int = 0, guild_id=None) -> dict:
        message_id = snowflake()
        msg = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": 0,
            "content": data.get("content") or "",
            "embeds": data.get("embeds") or [],
            "components": self._with_ids(data.get("components") or []),
            "flags": flags | int(data.get("flags") or 0),
            "author": self.bot_user,
            "attachments": self._attachments(data),
            "mentions": [],
            "mention_roles": pinged_roles(
                data.get("content") or "",
                data.get("allowed_mentions"),
                self.role_mentionable,
                self.bot_mentions_everyone,
            ),
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": self._now_iso(),
            "edited_timestamp": None,
            "application_id": str(APPLICATION_ID),
        }
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
        self.messages[message_id] = msg
        self.channel_messages[int(channel_id)].append(message_id)
        return msg

    @staticmethod
    def _with_ids(rows: list) -> list:
        """Discord numbers every component in what it returns."""
        counter = itertools.count(1)
        out = []
        for row in rows:
            row = dict(row, id=next(counter))
            row["components"] = [dict(c, id=next(counter)) for c in row.get("components", [])]
            out.append(row)
        return out

    def _attachments(self, data: dict) -> list[dict]:
        """The message's attachments as Discord returns them: `payload_json.attachments` names
        each upload by index (`files[n]`, here `_files[n]`)."""
        uploads = data.get("_files") or {}
        out = []
        for entry in data.get("attachments") or []:
            if "id" in entry and str(entry["id"]) in self._attachment_ids():
                out.append(entry)  # an attachment kept from before the edit
                continue
            content = uploads.get(int(entry["id"]))
            if content is None:
                raise _invalid("attachments", f"No file uploaded for attachment {entry['id']}")
            attachment_id = snowflake()
            self.files[attachment_id] = content
            name = entry.get("filename") or "file"
            out.append(
                {
                    "id": str(attachment_id),
                    "filename": name,
                    "size": len(content),
                    "url": f"https://cdn.discordapp.com/attachments/0/{attachment_id}/{name}",
                    "proxy_url": f"https://media.discordapp.net/attachments/0/{attachment_id}/{name}",
                    "content_type": "image/png" if name.endswith(".png") else None,
                }
            )
        return out

    def _attachment_ids(self) -> set[str]:
        return {str(i) for i in self.files}

    def attachment(self, message: dict, filename: str) -> bytes:
        """The bytes of the file `filename` attached to `message`."""
        for entry in message.get("attachments") or []:
            if entry["filename"] == filename:
                return self.files[int(entry["id"])]
        raise AssertionError(f"no attachment {filename!r} on message {message.get('id')}")

    def _edit(self, msg: dict, data: dict) -> dict:
        if "attachments" in data:
            msg["attachments"] = self._attachments(data)
        for key in ("content", "embeds"):
            if key in data:
                msg[key] = data[key] if data[key] is not None else ("" if key == "content" else [])
        if "components" in data:
            msg["components"] = self._with_ids(data["components"] or [])
        if "flags" in data and data["flags"] is not None:
            msg["flags"] = (msg["flags"] & (EPHEMERAL)) | int(data["flags"])
        msg["flags"] &= ~LOADING
        msg["edited_timestamp"] = self._now_iso()
        return msg

    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        # Exactly "application/json", no charset: discord.py decodes JSON only then.
        return web.Response(
            body=json.dumps(body).encode(),
            status=status,
            headers={**(headers or {}), "Content-Type": "application/json"},
        )

    # --- Rate limits -------------------------------------------------------------------------

    @staticmethod
    def _route_key(method: str, path: str) -> tuple[tuple[str, str], str]:
        """(method, route template) and the major parameter that separates buckets."""
        template, major = path, ""
        rules = (
            (r"^/channels/(\d+)", "/channels/{channel_id}"),
            (r"^/webhooks/(\d+)/([^/]+)", "/webhooks/{webhook_id}/{token}"),
            (r"^/interactions/(\d+)/([^/]+)", "/interactions/{interaction_id}/{token}"),
            (
                r"^/applications/(\d+)/guilds/(\d+)",
                "/applications/{application_id}/guilds/{guild_id}",
            ),
            (r"^/applications/(\d+)", "/applications/{application_id}"),
        )
        for pattern, replacement in rules:
            m = re.match(pattern, path)
            if m:
                major = "/".join(m.groups())
                template = replacement + path[m.end() :]
                break
        template = re.sub(r"/messages/\d+", "/messages/{message_id}", template)
        template = template.replace("/messages/@original", "/messages/{message_id}")
        return (method, template), major

    def _bucket_name(self, route: tuple[str, str], major: str) -> str:
        return format(abs(hash((route, major))) % (1 << 64), "016x")

    def _rate_limit(self, method: str, path: str, record: Recorded) -> web.Response | None:
        """Count the request in the global window and its route's bucket; answer 429 when
        either is exhausted (Discord's body and headers). Interaction endpoints are outside the
        global limit, as on Discord."""
        now = self.clock.monotonic()
        interaction_route = path.startswith(("/interactions/", "/webhooks/"))
        if not interaction_route and self.global_limit:
            self.global_window = [t for t in self.global_window if now - t < 1.0]
            if len(self.global_window) >= self.global_limit:
                retry = round(1.0 - (now - self.global_window[0]), 3)
                return self._too_many(record, retry, scope="global")
            self.global_window.append(now)
        route, major = self._route_key(method, path)
        limit = self.route_limits.get(route)
        if limit is None:
            return None
        count, per = limit
        key = (f"{route[0]} {route[1]}", major)
        window = self.buckets.setdefault(key, [])
        window[:] = [t for t in window if now - t < per]
        if len(window) >= count:
            retry = round(per - (now - window[0]), 3)
            return self._too_many(record, retry, scope="user", route=route, major=major)
        window.append(now)
        return None

    def _too_many(
        self, record: Recorded, retry: float, *, scope: str, route=None, major: str = ""
    ) -> web.Response:
        body = {
            "message": "You are being rate limited.",
            "retry_after": max(retry, 0.001),
            "global": scope == "global",
            "code": 0,
        }
        # Discord's 429s come through its proxy (`Via`): discord.py treats a 429 without it as a
        # Cloudflare ban and gives up instead of waiting `retry_after`.
        headers = {
            "Retry-After": str(max(1, int(retry + 0.999))),
            "X-RateLimit-Scope": scope,
            "Via": "1.1 google",
        }
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(self._bucket_headers(record.method, record.path) or {})
        record.status, record.response = 429, body
        self.rejections.append(record)
        return self._json(body, 429, headers)

    def _bucket_headers(self, method: str, path: str) -> dict[str, str]:
        """Discord's X-RateLimit-* headers for the request's bucket (none for unlimited
        routes)."""
        route, major = self._route_key(method, path)
        limit = self.route_limits.get(route)
        if limit is None:
            return {}
        count, per = limit
        now = self.clock.monotonic()
        counted = self.buckets.get((f"{route[0]} {route[1]}", major), [])
        window = [t for t in counted if now - t < per]
        reset_after = round(per - (now - window[0]), 3) if window else per
        return {
            "X-RateLimit-Limit": str(count),
            "X-RateLimit-Remaining": str(max(0, count - len(window))),
            "X-RateLimit-Reset": f"{self.now() + reset_after:.3f}",  # Discord's clock
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self._bucket_name(route, major),
        }

    @property
    def invalid_requests(self) -> list[Recorded]:
        """Responses Discord counts towards its invalid-request ban (401, 403, 429 other than a
        shared-scope 429), leaving out the ones a test injected on purpose."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.status in (401, 403, 429) and r.seq not in self.injected
            ]

    def assert_invalid_within(self, budget: int) -> None:
        bad = self.invalid_requests
        assert len(bad) <= budget, (
            f"{len(bad)} 401/403/429 responses (budget {budget}); Discord bans a bot past "
            f"10,000 in 10 minutes: "
            + "; ".join(f"{r.method} {r.path} → {r.status} {r.response}" for r in bad[:10])
        )

    # --- The handler -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            return await self._answer(request)
        finally:
            with self.changed:
                self.changed.notify_all()

    async def _answer(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX) :]
        body: Any = None
        if request.can_read_body:
            if request.content_type == "multipart/form-data":
                form = await request.post()
                body = json.loads(form.get("payload_json") or "null")
                uploads = {
                    int(name[len("files[") : -1]): value.file.read()
                    for name, value in form.items()
                    if name.startswith("files[") and isinstance(value, web.FileField)
                }
                if uploads and isinstance(body, dict):
                    body["_files"] = uploads
            else:
                text = await request.text()
                try:
                    body = json.loads(text) if text else None
                except ValueError:
                    # Discord: 400, 50109 "The request body contains invalid JSON." (issue 23,
                    # item 20)
                    return self._json({"code": 50109, "message": INVALID_JSON}, 400)
        if self.latency:
            await asyncio.sleep(self.latency)
        with self.lock:
            record = Recorded(
                next(self._seq), time.monotonic(), request.method, path, dict(request.query), body
            )
            self.requests.append(record)
            gate = next(((g, r, a) for g, r, a in self.gates if g(request.method, path)), None)
            if gate is not None:
                self.gates.remove(gate)
        if gate is not None:
            _, release, arrived = gate
            arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait)
            record.status = 503
            return self._json({"message": "held and dropped", "code": 0}, 503)
        with self.lock:
            failure = next((f for f in self.failures if f[0](request.method, path)), None)
            if failure is not None:
                self.failures.remove(failure)
                if failure[3] > 1:
                    self.failures.append((failure[0], failure[1], failure[2], failure[3] - 1))
                record.status, record.response = failure[1], failure[2]
                self.injected.add(record.seq)
                return self._json(failure[2], failure[1], self.failure_headers.get(id(failure[0])))
            limited = self._rate_limit(request.method, path, record)
            if limited is not None:
                return limited
            try:
                check_body_type(request.method, path, body)
                try:
                    status, response = self._route(request.method, path, request.query, body)
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    # Discord validates the body's shape first: a wrong type is a form error.
                    raise _invalid("", f"Invalid form body: {exc!r}", "BASE_TYPE_BAD") from exc
            except Rejected as exc:
                status, response = exc.status, exc.body
                self.rejections.append(record)
            record.status, record.response = status, copy.deepcopy(response)
            inter = self._interaction_for(path)
            if inter is not None:
                inter.last_request_at = record.at
            headers = self._bucket_headers(request.method, path)
            loss = next((f for f in self.losses if f[0](request.method, path)), None)
            if loss is not None and 200 <= status < 300:
                self.losses.remove(loss)
                if loss[2] > 1:
                    self.losses.append((loss[0], loss[1], loss[2] - 1))
                self.lost.append(record)
                self.injected.add(record.seq)
        if loss is not None and 200 <= status < 300:
            if loss[1] == RESET:
                _reset(request)  # the answer never leaves; the bot reads ECONNRESET
                return web.Response(status=204)
            if loss[1] is None:
                request.transport.close()  # the answer never leaves
                return web.Response(status=204)
            return self._json({"message": "500: Internal Server Error", "code": 0}, loss[1])
        if status == 204:
            return web.Response(status=204, headers=headers)
        return self._json(response, status, headers)

    # --- The gateway (opt-in) ------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """Discord's gateway, as much as a bot with the `guilds` intent needs: HELLO, READY and
        GUILD_CREATE after IDENTIFY, ACK for each heartbeat, then whatever `dispatch()` sends.
        JSON text frames (discord.py reads text frames uncompressed)."""
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41_250}, "s": None, "t": None})
        async for message in ws:
            data = json.loads(message.data)
            if data.get("op") == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif data.get("op") == 2:
                shard = data["d"].get("shard") or [0, 1]
                mine = [g for g in self.gateway_guilds if shard_of(g["id"], shard[1]) == shard[0]]
                guilds = [{"id": g["id"], "unavailable": True} for g in mine]
                ready = {
                    "v": 10,
                    "user": self.bot_user,
                    "guilds": guilds,
                    "session_id": "fake-session",
                    # From the Host header, not `request.url`: aiohttp at the lowest version
                    # this project allows cannot build a URL with a newer yarl.
                    "resume_gateway_url": f"ws://{request.host}{request.path}",
                    "shard": shard,
                    "application": {"id": str(APPLICATION_ID), "flags": 0},
                }
                await self._send_event(ws, "READY", ready)
                for guild in mine:
                    await self._send_event(ws, "GUILD_CREATE", guild)
                self._shards[id(ws)] = (shard[0], shard[1])
                self._sockets.append(ws)
                self.gateway_ready.set()
        if ws in self._sockets:
            self._sockets.remove(ws)
        self._shards.pop(id(ws), None)
        return ws

    async def _send_event(self, ws: web.WebSocketResponse, name: str, data: dict) -> None:
        await ws.send_json({"op": 0, "t": name, "s": next(self._gateway_seq), "d": data})

    def shards_connected(self) -> list[tuple[int, int]]:
        """(shard id, shard count) of every identified gateway connection."""
        return [self._shards[id(ws)] for ws in list(self._sockets) if id(ws) in self._shards]

    def dispatch(self, name: str, data: dict) -> list[int]:
        """Send a gateway event (INTERACTION_CREATE, …) to the identified bots; returns the shard
        ids it went to. An event of a guild goes only to the connection of that guild's shard,
        `(guild_id >> 22) % num_shards`, as Discord routes it (`shard_of`; docs/deploy.md §8,
        "Bot shards"); an event without a guild (a DM) to shard 0. No connection for that shard (its
        process is down): nothing is sent, and Discord keeps no interaction for later — the
        member sees "This interaction failed". Interactions go through `register_interaction`
        first, as the harness's `feed` does."""
        if name == "INTERACTION_CREATE":
            self.register_interaction(data)
        guild = data.get("guild_id")

        def wanted(ws: web.WebSocketResponse) -> bool:
            shard = self._shards.get(id(ws))
            if shard is None:
                return False
            return shard[0] == (shard_of(guild, shard[1]) if guild else 0)

        async def send() -> list[int]:
            sent = []
            for ws in [ws for ws in list(self._sockets) if wanted(ws)]:
                try:
                    await self._send_event(ws, name, data)
                except (ConnectionError, RuntimeError):
                    continue  # the connection closed meanwhile: the event is gone with it
                sent.append(self._shards[id(ws)][0])
            return sent

        assert self._loop is not None, "the fake is not started"
        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` (called under the fake's lock) holds — checked after every
        request the fake answers — or `timeout` seconds pass; returns the last answer. For
        tests on an event loop: `await asyncio.to_thread(fake.wait_for, …)`."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def _interaction_for(self, path: str) -> InteractionState | None:
        m = re.match(r"^/(?:interactions/\d+|webhooks/\d+)/([^/]+)", path)
        return self.interactions.get(m.group(1)) if m else None

    def _route(self, method: str, path: str, query, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/users/@me":
            return 200, self.bot_user
        if method == "GET" and path == "/oauth2/applications/@me":
            return 200, {
                "id": str(APPLICATION_ID),
                "name": "Prediction Markets",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": {**self.bot_user, "id": "900000000000000099", "bot": False},
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
            }
        if method == "GET" and path == "/gateway/bot":
            url = self.base_url.replace("http://", "ws://").replace(API_PREFIX, "/gateway")
            return 200, {
                "url": url if self.gateway else "ws://127.0.0.1:9",
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        m = re.fullmatch(r"/guilds/(\d+)/members/(\d+)/roles/(\d+)", path)
        if m and method == "PUT":
            # Discord refuses a role without Manage Roles, or at or above the bot's highest role.
            role_id = int(m.group(3))
            if role_id not in self.role_position:
                raise Rejected(404, {"code": 10011, "message": "Unknown Role"})
            if not self.bot_manages_roles or self.role_position[role_id] >= self.bot_top_position:
                raise Rejected(403, {"code": 50013, "message": "Missing Permissions"})
            self.member_roles.setdefault(int(m.group(2)), set()).add(role_id)
            return 204, None
        m = re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", path)
        if m and method == "POST":
            return self._callback(int(m.group(1)), m.group(2), body)
        m = re.fullmatch(r"/webhooks/(\d+)/([^/]+)", path)
        if m and method == "POST":
            return self._followup(m.group(2), body)
        m = re.fullmatch(r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", path)
        if m:
            return self._webhook_message(method, m.group(2), m.group(3), body)
        if method == "POST" and path == "/users/@me/channels":
            user_id = int(body["recipient_id"])
            if user_id not in self.dm_channels and self.dm_spam is not None:
                count, per = self.dm_spam
                now = self.clock.monotonic()
                self.dm_opened = [t for t in self.dm_opened if now - t < per]
                if len(self.dm_opened) >= count:
                    raise Rejected(403, DM_TOO_FAST)
                self.dm_opened.append(now)
            channel_id = self.dm_channels.setdefault(user_id, snowflake())
            self.dm_recipients[channel_id] = user_id
            return 200, {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "recipients": [
                    {
                        "id": str(user_id),
                        "username": f"user{user_id}",
                        "discriminator": "0",
                        "avatar": None,
                    }
                ],
            }
        m = re.fullmatch(r"/channels/(\d+)/messages", path)
        if m and method == "POST":
            channel_id = int(m.group(1))
            recipient = self.dm_recipients.get(channel_id)
            if recipient is not None and recipient in self.closed_dms:
                raise Rejected(403, {"code": 50007, "message": "Cannot send messages to this user"})
            self._require(channel_id, "view", "send")
            check_message(body or {})
            if (body or {}).get("embeds"):
                self._require(channel_id, "embed_links")
            nonce = (body or {}).get("nonce")
            if nonce is not None and (body or {}).get("enforce_nonce"):
                # Discord returns the message already created with this nonce (a few minutes)
                # instead of creating another.
                seen = self.nonces.get((channel_id, str(nonce)))
                if seen is not None and self.clock.time() - seen[0] < NONCE_SECONDS:
                    existing = self.messages.get(seen[1])
                    if existing is not None:
                        return 200, existing
                msg = self._new_message(channel_id, body or {})
                self.nonces[(channel_id, str(nonce))] = (self.clock.time(), int(msg["id"]))
                return 200, msg
            return 200, self._new_message(channel_id, body or {})
        m = re.fullmatch(r"/channels/(\d+)/messages/(\d+)/threads", path)
        if m and method == "POST":
            return 201, self._start_thread(int(m.group(1)), int(m.group(2)), body or {})
        m = re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path)
        if m:
            self._require(int(m.group(1)), "view")
            msg = self.messages.get(int(m.group(2)))
            if msg is None or msg["channel_id"] != m.group(1):
                raise Rejected(404, {"code": 10008, "message": "Unknown Message"})
            if method == "GET":
                return 200, msg
            if method == "PATCH":
                if msg["author"]["id"] != self.bot_user["id"]:
                    raise Rejected(403, NOT_AUTHOR)
                check_message(body or {}, editing=True)
                if (body or {}).get("embeds"):
                    self._require(int(m.group(1)), "embed_links")
                return 200, self._edit(msg, body or {})
            if method == "DELETE":
                self.messages.pop(int(m.group(2)))
                return 204, None
        m = re.fullmatch(r"/applications/(\d+)(?:/guilds/(\d+))?/commands", path)
        if m:
            guild = int(m.group(2)) if m.group(2) else None
            if method == "PUT":
                return 200, self._sync(guild, body or [])
            if method == "GET":
                return 200, self.commands.get(guild, [])
        raise Rejected(404, {"code": 0, "message": "404: Not Found"})

    def _start_thread(self, channel_id: int, message_id: int, body: dict) -> dict:
        """Discord's "Start Thread from Message" (issue 26;
        https://discord.com/developers/docs/resources/channel#start-thread-from-message): needs
        View Channel (50001) and Create Public Threads (50013) in the channel; the message must
        be there (10008), not in a thread, and have no thread yet (160004); `name` is 1–100
        characters, `auto_archive_duration` 60, 1440, 4320 or 10080 minutes,
        `rate_limit_per_user` 0–21600 seconds (50035). The thread's id is the message's."""
        self._require(channel_id, "view", "create_threads")
        msg = self.messages.get(message_id)
        if msg is None or msg["channel_id"] != str(channel_id):
            raise Rejected(404, {"code": 10008, "message": "Unknown Message"})
        if channel_id in self.threads:
            raise Rejected(
                400, {"code": 50024, "message": "Cannot execute action on this channel type"}
            )
        if message_id in self.threads:
            raise Rejected(400, THREAD_ALREADY_CREATED)
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= utf16(name) <= 100:
            raise _invalid("name", "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
        archive = body.get("auto_archive_duration", 1440)
        if archive not in (60, 1440, 4320, 10080):
            raise _invalid("auto_archive_duration", "Value must be one of {60, 1440, 4320, 10080}.")
        slow = body.get("rate_limit_per_user")
        if slow is not None and not (isinstance(slow, int) and 0 <= slow <= 21600):
            raise _invalid("rate_limit_per_user", "Must be between 0 and 21600.")
        thread = {
            "id": str(message_id),
            "type": 11,
            "guild_id": str(msg.get("guild_id") or self.guild_id_of(channel_id)),
            "parent_id": str(channel_id),
            "owner_id": self.bot_user["id"],
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": slow or 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive,
                "archive_timestamp": self._now_iso(),
                "locked": False,
            },
        }
        self.threads[message_id] = thread
        msg["thread"] = thread
        return thread

    def guild_id_of(self, channel_id: int) -> int:
        """The guild of a channel, as interactions from it said (0: unknown)."""
        return self.channel_guilds.get(int(channel_id), 0)

    def thread_posts(self, message_id: int) -> list[dict]:
        """What was posted in the thread started from `message_id`."""
        return self.channel_posts(message_id)

    def _require(self, channel_id: int, *needed: str) -> None:
        """The bot's channel permissions: no view → 50001 Missing Access; no send or no embed
        links → 50013 Missing Permissions."""
        thread = self.threads.get(int(channel_id))
        if thread is not None:  # a thread: its parent's permissions, SEND_MESSAGES_IN_THREADS
            needed = tuple("send_in_threads" if n == "send" else n for n in needed)
            channel_id = int(thread["parent_id"])
        perms = self.channel_permissions.get(int(channel_id))
        if perms is None:
            return
        if not perms["view"]:
            raise Rejected(403, MISSING_ACCESS)
        for name in needed:
            if not perms[name]:
                raise Rejected(403, MISSING_PERMISSIONS)

    def _sync(self, guild: int | None, commands: list[dict]) -> list[dict]:
        if len(commands) > 100:
            raise _invalid("", "Must be 100 or fewer in length.")
        names = set()
        for i, cmd in enumerate(commands):
            check_command(cmd, str(i))
            key = (cmd["name"], cmd.get("type", 1))
            if key in names:
                raise _invalid(f"{i}.name", "Application command names must be unique")
            names.add(key)
        check_context_menu_count(commands)
        stored = []
        for cmd in commands:
            out = {
                **cmd,
                "id": str(snowflake()),
                "application_id": str(APPLICATION_ID),
                "version": str(snowflake()),
                "type": cmd.get("type", 1),
                "description": cmd.get("description") or "",
            }
            if guild is not None:
                out["guild_id"] = str(guild)
            stored.append(out)
        self.commands[guild] = stored
        return stored

    def _state(self, token: str) -> InteractionState:
        """The interaction of a webhook token: unknown → 404 10015; older than 15 minutes →
        401 50027 (Discord's interaction tokens live 15 minutes)."""
        state = self.interactions.get(token)
        if state is None:
            raise Rejected(404, UNKNOWN_WEBHOOK)
        if self.now() - state.created_at > TOKEN_LIFETIME:
            raise Rejected(401, INVALID_WEBHOOK_TOKEN)
        return state

    def _callback(self, interaction_id: int, token: str, body: dict) -> tuple[int, Any]:
        state = self.interactions.get(token)
        if state is None or state.id != interaction_id:
            raise Rejected(404, UNKNOWN_INTERACTION)
        now = time.monotonic()
        if self.now() - state.created_at > self.deadline:
            raise Rejected(404, UNKNOWN_INTERACTION)
        if state.callback_type is not None and token not in self.lenient:
            raise Rejected(400, ALREADY_ACKNOWLEDGED)
        kind = int(body.get("type", 0))
        allowed = CALLBACKS_ALLOWED.get(int(state.payload["type"]), frozenset())
        if kind not in allowed:
            raise _invalid(
                "type",
                f"Value must be one of {tuple(sorted(allowed))}.",
                "INTERACTION_RESPONSE_TYPE_INVALID",
            )
        data = body.get("data") or {}
        payload = state.payload
        channel_id = int(payload.get("channel_id") or payload["channel"]["id"])
        guild_id = payload.get("guild_id")
        clicked = (payload.get("message") or {}).get("id")
        message = None
        if kind == 4:
            check_message(data)
            message = self._new_message(channel_id, data, guild_id=guild_id)
            state.original_id = int(message["id"])
        elif kind == 5:
            check_defer_flags(data)
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._new_message(channel_id, {}, flags=flags, guild_id=guild_id)
            state.original_id = int(message["id"])
        elif kind in (6, 7):
            if clicked is None or int(clicked) not in self.messages:
                raise _invalid("type", "Interaction has no message to update")
            state.original_id = int(clicked)
            if kind == 7:
                check_message(data, editing=True)
                message = self._edit(self.messages[int(clicked)], data)
        elif kind == 8:
            check_choices(data)
            check_choice_types(payload, data)
        elif kind == 9:
            check_modal(data)
        else:
            raise _invalid("type", f"Unsupported interaction response type {kind}")
        state.callback_type, state.callback_at = kind, now
        response = {
            "interaction": {
                "id": str(interaction_id),
                "type": payload["type"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(message and int(message["flags"]) & EPHEMERAL),
            }
        }
        if message is not None:
            response["interaction"]["response_message_id"] = message["id"]
            response["resource"] = {"type": kind, "message": message}
        return 200, response

    def _followup(self, token: str, body: dict) -> tuple[int, Any]:
        state = self._state(token)
        if state.callback_type is None:
            raise Rejected(404, UNKNOWN_WEBHOOK)
        check_message(body or {})
        original = self.messages.get(state.original_id) if state.original_id else None
        if (
            state.callback_type == 5
            and not state.original_deleted
            and original is not None
            and int(original["flags"]) & LOADING
        ):
            # Discord: the first follow-up after a deferred message replaces the "thinking"
            # placeholder (which keeps its own ephemeral flag).
            data = {k: v for k, v in (body or {}).items() if k != "flags"}
            message = self._edit(original, data)
            state.followups.append(int(message["id"]))
            return 200, message
        payload = state.payload
        channel_id = int(payload.get("channel_id") or payload["channel"]["id"])
        message = self._new_message(channel_id, body or {}, guild_id=payload.get("guild_id"))
        state.followups.append(int(message["id"]))
        return 200, message

    def _webhook_message(self, method: str, token: str, which: str, body: Any):
        state = self._state(token)
        if which == "@original":
            if state.original_id is None:
                raise Rejected(404, {"code": 10008, "message": "Unknown Message"})
            message_id = state.original_id
        else:
            message_id = int(which)
        msg = self.messages.get(message_id)
        if msg is None:
            raise Rejected(404, {"code": 10008, "message": "Unknown Message"})
        if method == "GET":
            return 200, msg
        if method == "PATCH":
            check_message(body or {}, editing=True)
            # Checked on a copy: a refused edit changes nothing (the copy shares no state).
            trial = copy.deepcopy(msg)
            trial["content"] = (body or {}).get("content", trial["content"]) or ""
            if "embeds" in (body or {}):
                trial["embeds"] = (body or {})["embeds"] or []
            if "components" in (body or {}):
                trial["components"] = (body or {})["components"] or []
            keeps_files = bool(trial.get("attachments")) and "attachments" not in (body or {})
            files = keeps_files or bool((body or {}).get("attachments"))
            if not (trial["content"] or trial["embeds"] or trial["components"] or files):
                raise Rejected(400, {"code": 50006, "message": "Cannot send an empty message"})
            return 200, self._edit(msg, body or {})
        if method == "DELETE":
            self.messages.pop(message_id)
            if which == "@original":
                state.original_deleted = True
            return 204, None
        raise Rejected(405, {"code": 0, "message": "405: Method Not Allowed"})
