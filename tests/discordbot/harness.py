"""Drive the real bot offline: log it in against `FakeDiscord`, feed raw gateway
`INTERACTION_CREATE` payloads to discord.py's parser, wait until the bot is done, and look at
what Discord would have received.

    h = await Harness.start()
    ex = await h.send(h.command("bet", ALICE_M, confirm=False, market="1", outcome="1", amount=100))
    assert ex.response_type == DEFERRED and "You bought" in ex.text

Payload builders follow Discord's documented shapes (types 2 command, 3 component, 4
autocomplete, 5 modal submit), with `attachment_size_limit`, a `member` carrying its permissions
string, and `guild_id` inside `data` for guild commands. Buttons are clicked on the message the
fake actually stored, and modals are submitted from the modal the bot actually sent, so a test
follows the same path a member's client would.

As on Discord, the bot sees an interaction `fake.gateway_delay` (300 ms) after Discord created it
(the id is dated back), and it starts with the test guild cached from GUILD_CREATE, fed through
discord.py's gateway parser, so channel options resolve to real channels.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import discord

from discordbot.bot import BotConfig, PredictionBot, build_bot
from tests.conftest import GUILD

from .fake_discord import (
    APPLICATION_ID,
    BOT_USER_ID,
    EPHEMERAL,
    FakeDiscord,
    Recorded,
    snowflake,
)

CHANNEL = 444_444_444_444_444_401
ANNOUNCE_CHANNEL = 444_444_444_444_444_402

# Interaction response types (Discord's numbers).
MESSAGE, DEFERRED, DEFERRED_UPDATE, UPDATE, AUTOCOMPLETE, MODAL = 4, 5, 6, 7, 8, 9

BASIC_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, use_application_commands=True, embed_links=True
)
MOD_PERMISSIONS = BASIC_PERMISSIONS | discord.Permissions(manage_guild=True)


@dataclass(frozen=True)
class Member:
    id: int
    name: str = "member"
    permissions: discord.Permissions = BASIC_PERMISSIONS
    roles: tuple[int, ...] = ()
    bot: bool = False
    display: str | None = None
    """The global display name (the username when None), as the member directory stores it."""

    def user_json(self) -> dict:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.display or self.name,
            "avatar": None,
            "bot": self.bot,
        }

    def member_json(self, *, with_user: bool = True) -> dict:
        out = {
            "roles": [str(r) for r in self.roles],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "avatar": None,
            "permissions": str(self.permissions.value),
        }
        if with_user:
            out["user"] = self.user_json()
        return out


def _option(name: str, value: Any, resolved: dict) -> dict:
    if isinstance(value, Member):
        resolved.setdefault("users", {})[str(value.id)] = value.user_json()
        resolved.setdefault("members", {})[str(value.id)] = value.member_json(with_user=False)
        return {"name": name, "type": 6, "value": str(value.id)}
    if isinstance(value, Channel):
        resolved.setdefault("channels", {})[str(value.id)] = value.json()
        return {"name": name, "type": 7, "value": str(value.id)}
    if isinstance(value, Role):
        resolved.setdefault("roles", {})[str(value.id)] = value.json()
        return {"name": name, "type": 8, "value": str(value.id)}
    if isinstance(value, bool):
        return {"name": name, "type": 5, "value": value}
    if isinstance(value, int):
        return {"name": name, "type": 4, "value": value}
    return {"name": name, "type": 3, "value": str(value)}


@dataclass(frozen=True)
class Channel:
    id: int
    name: str = "announcements"
    bot_denied: discord.Permissions = field(default_factory=discord.Permissions.none)
    """Permissions a channel overwrite takes from the bot here (GUILD_CREATE carries it)."""

    def json(self) -> dict:
        return {
            "id": str(self.id),
            "type": 0,
            "name": self.name,
            "guild_id": str(GUILD),
            "permissions": str(BASIC_PERMISSIONS.value),
            "position": 0,
            "nsfw": False,
            "parent_id": None,
        }

    def guild_json(self) -> dict:
        """As in GUILD_CREATE: with its permission overwrites, without `permissions`."""
        out = {k: v for k, v in self.json().items() if k != "permissions"}
        out["permission_overwrites"] = (
            [{"id": str(BOT_USER_ID), "type": 1, "allow": "0", "deny": str(self.bot_denied.value)}]
            if self.bot_denied.value
            else []
        )
        return out


@dataclass(frozen=True)
class Role:
    id: int
    name: str = "role"
    mentionable: bool = True
    """Whether anyone may @mention it (else only senders with Mention Everyone ping it)."""
    permissions: discord.Permissions = field(default_factory=discord.Permissions.none)
    position: int = 1
    """Its place in the role list (higher is more powerful); the bot gives only roles below
    its own highest (issue 26)."""

    def json(self) -> dict:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "hoist": False,
            "position": self.position,
            "permissions": str(self.permissions.value),
            "managed": False,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass
class Exchange:
    """What Discord received for one interaction."""

    payload: dict
    fake: FakeDiscord
    fed_at: float
    done_at: float = 0.0

    @property
    def token(self) -> str:
        return self.payload["token"]

    @property
    def requests(self) -> list[Recorded]:
        with self.fake.lock:
            return [
                r
                for r in self.fake.requests
                if f"/{self.token}/" in r.path + "/" or r.path.endswith(f"/{self.token}")
            ]

    @property
    def callbacks(self) -> list[Recorded]:
        return [r for r in self.requests if r.is_callback]

    @property
    def callback(self) -> Recorded | None:
        calls = self.callbacks
        return calls[0] if calls else None

    @property
    def response_type(self) -> int | None:
        cb = self.callback
        return None if cb is None else int(cb.json["type"])

    @property
    def first_response_seconds(self) -> float | None:
        """From the bot seeing the interaction to its first response."""
        cb = self.callback
        return None if cb is None else cb.at - self.fed_at

    @property
    def first_response_age(self) -> float | None:
        """From Discord creating the interaction (its snowflake) to the first response: the
        clock Discord's 3-second deadline runs on, gateway delay included."""
        cb = self.callback
        if cb is None:
            return None
        return self.fake.gateway_delay + (cb.at - self.fed_at)

    @property
    def completion_seconds(self) -> float:
        reqs = self.requests
        return (reqs[-1].at if reqs else self.done_at) - self.fed_at

    @property
    def state(self):
        return self.fake.interactions[self.token]

    @property
    def original(self) -> dict | None:
        """The message the first response created (or the clicked message, for updates)."""
        state = self.state
        if state.original_id is None or state.original_deleted:
            return None
        return self.fake.message(state.original_id)

    @property
    def followups(self) -> list[dict]:
        """Follow-up messages; the first one after a deferred message is the original itself
        (Discord edits the "thinking" placeholder with it)."""
        return [m for m in (self.fake.message(i) for i in self.state.followups) if m]

    @property
    def messages(self) -> list[dict]:
        """Every message this interaction left visible, the original first (once)."""
        original = self.original
        shown = [original] if original and self.response_type in (MESSAGE, DEFERRED) else []
        if self.response_type in (DEFERRED_UPDATE, UPDATE) and original:
            shown = [original]
        ids = {m["id"] for m in shown}
        return shown + [m for m in self.followups if m["id"] not in ids]

    @property
    def reply(self) -> dict:
        """The message that carries the answer: the last follow-up, else the original."""
        followups = self.followups
        if followups:
            return followups[-1]
        original = self.original
        assert original is not None, f"no reply for interaction; requests: {self.requests}"
        return original

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.reply["flags"]) & EPHEMERAL)

    @property
    def text(self) -> str:
        return message_text(self.reply)

    @property
    def modal(self) -> dict:
        assert self.response_type == MODAL, f"expected a modal, got {self.response_type}"
        return self.callback.json["data"]

    @property
    def choices(self) -> list[dict]:
        assert self.response_type == AUTOCOMPLETE, f"expected choices, got {self.response_type}"
        return self.callback.json["data"]["choices"]

    @property
    def rejected(self) -> list[Recorded]:
        return [r for r in self.requests if r.status >= 400]


def message_text(message: dict) -> str:
    """Content and embed text of a message, flattened for assertions."""
    parts = [message.get("content") or ""]
    for e in message.get("embeds") or []:
        parts += [e.get("title") or "", e.get("description") or ""]
        for f in e.get("fields") or []:
            parts += [f.get("name") or "", f.get("value") or ""]
        parts.append((e.get("footer") or {}).get("text") or "")
    return "\n".join(p for p in parts if p)


def buttons(message: dict) -> list[dict]:
    return [c for row in message.get("components") or [] for c in row.get("components", [])]


class Harness:
    def __init__(self, fake: FakeDiscord, bot: PredictionBot | None) -> None:
        """`bot` None: payloads only, for a bot in another process (`FakeDiscord(gateway=True)`
        delivers them)."""
        self.fake = fake
        self.bot = bot
        self.guild_id = GUILD
        self.channel_id = CHANNEL

    @classmethod
    async def start(
        cls,
        *,
        fake: FakeDiscord | None = None,
        login: bool = True,
        guild: bool = True,
        **config: Any,
    ) -> Harness:
        """A started fake and a bot logged in against it (setup_hook ran: cogs loaded), with
        the test guild and its two channels cached from GUILD_CREATE (`guild=False`: a bot
        that has not received it yet)."""
        fake = fake or FakeDiscord()
        if not fake.base_url:
            fake.start()
        discord.http.Route.BASE = fake.base_url
        options: dict[str, Any] = {
            "background_tasks": False,
            "sync_on_start": False,
            "dm_interval": 0.0,
            "dev_guild_id": None,
        }
        options.update(config)
        bot = build_bot(BotConfig.from_settings(**options))
        harness = cls(fake, bot)
        if login:
            await bot.login("fake-token")
            if guild:
                harness.guild_create([Channel(ANNOUNCE_CHANNEL, "announcements")])
        return harness

    def guild_create(
        self,
        channels: Iterable[Channel] = (),
        *,
        roles: Iterable[Role] = (),
        bot_roles: Iterable[Role] = (),
    ) -> discord.Guild:
        """Feed GUILD_CREATE for the test guild through discord.py's gateway parser, as the
        gateway does after READY, so the bot caches the guild and its channels (slash command
        channel options then resolve to real `TextChannel`s, as in production)."""
        self.bot._connection.parsers["GUILD_CREATE"](
            self.guild_payload(channels, roles=roles, bot_roles=bot_roles)
        )
        guild = self.bot.get_guild(self.guild_id)
        assert guild is not None, "GUILD_CREATE did not cache the guild"
        return guild

    def guild_payload(
        self,
        channels: Iterable[Channel] = (),
        *,
        roles: Iterable[Role] = (),
        bot_roles: Iterable[Role] = (),
    ) -> dict:
        """The test guild's GUILD_CREATE payload: its @everyone role, `roles` and the bot's own
        roles, the bot's own member and the channels (#general and `channels`)."""
        everyone = Role(self.guild_id, "@everyone").json()
        everyone["permissions"] = str(BASIC_PERMISSIONS.value)
        everyone["position"] = 0
        listed = [Channel(self.channel_id, "general"), *channels]
        roles, bot_roles = list(roles), list(bot_roles)
        self.fake.know_roles([*roles, *bot_roles], bot_roles=bot_roles)  # issue 23 item 16
        payload = {
            "id": str(self.guild_id),
            "name": "Test guild",
            "icon": None,
            "owner_id": "900000000000000099",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [everyone, *(r.json() for r in [*roles, *bot_roles])],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": "2026-01-01T00:00:00+00:00",
            "large": False,
            "unavailable": False,
            "member_count": 4,
            # Discord always includes the bot's own member (discord.py's `guild.me`).
            "members": [
                {
                    "user": {**self.fake.bot_user},
                    "roles": [str(r.id) for r in bot_roles],
                    "joined_at": "2026-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "voice_states": [],
            "presences": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "channels": [c.guild_json() for c in listed],
        }
        return payload

    async def restart(self, **config: Any) -> Harness:
        """A new bot process against the same fake (the old one is closed first)."""
        await self.bot.close()
        return await Harness.start(fake=self.fake, **config)

    async def close(self, *, stop_fake: bool = True) -> None:
        if not self.bot.is_closed():
            await self.bot.close()
        if stop_fake:
            self.fake.stop()

    # --- Payloads ----------------------------------------------------------------------------

    def _base(self, kind: int, user: Member, *, channel_id: int | None = None) -> dict:
        """Discord created the interaction `gateway_delay` before the bot sees it: its id (and
        so Discord's 3-second clock) is dated that far back."""
        channel = channel_id or self.channel_id
        created = self.fake.now() - self.fake.gateway_delay
        return {
            "id": str(snowflake(created)),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "token": "tok-" + secrets.token_urlsafe(24),
            "version": 1,
            "guild_id": str(self.guild_id),
            "channel_id": str(channel),
            "channel": {
                "id": str(channel),
                "type": 0,
                "name": "general",
                "guild_id": str(self.guild_id),
                "position": 0,
                "nsfw": False,
                "parent_id": None,
                "permissions": str(user.permissions.value),
            },
            "member": user.member_json(),
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": str(discord.Permissions.all().value),
            "attachment_size_limit": 10 * 1024 * 1024,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
        }

    def command(self, name: str, user: Member, /, **options: Any) -> dict:
        """A slash command: `name` may be "market create" for a subcommand."""
        return self._command(2, name, user, options, focused=None)

    def autocomplete(self, name: str, user: Member, focused: str, /, **options: Any) -> dict:
        return self._command(4, name, user, options, focused=focused)

    def _command(self, kind: int, name: str, user: Member, options: dict, focused) -> dict:
        payload = self._base(kind, user)
        resolved: dict = {}
        opts = []
        for key, value in options.items():
            if value is None:
                continue
            opt = _option(key, value, resolved)
            if kind == 4:
                opt["type"] = 3 if key == focused else opt["type"]
                if key == focused:
                    opt["focused"] = True
            opts.append(opt)
        parts = name.split()
        if len(parts) == 2:
            opts = [{"name": parts[1], "type": 1, "options": opts}]
        data = {
            "id": str(snowflake()),
            "name": parts[0],
            "type": 1,
            "options": opts,
            "guild_id": str(self.guild_id),
        }
        if resolved:
            data["resolved"] = resolved
        payload["data"] = data
        return payload

    def message_command(self, name: str, user: Member, message: dict, /) -> dict:
        """A message context menu command (type 3) on `message`, a message the fake stored
        (`post_as`), as Discord sends it: `target_id` and the message under `resolved`."""
        payload = self._base(2, user, channel_id=int(message["channel_id"]))
        payload["data"] = {
            "id": str(snowflake()),
            "name": name,
            "type": 3,
            "target_id": message["id"],
            "guild_id": str(self.guild_id),
            "resolved": {"messages": {message["id"]: message}},
        }
        return payload

    def click(
        self,
        message: dict,
        user: Member,
        *,
        custom_id: str | None = None,
        label: str | None = None,
        values: Iterable[str] | None = None,
    ) -> dict:
        """A click (or a select) on a component of a message the fake stored."""
        found = None
        for comp in buttons(message):
            by_id = custom_id is not None and comp.get("custom_id") == custom_id
            if by_id or (label is not None and comp.get("label") == label):
                found = comp
        assert found is not None, f"no component {custom_id or label!r} on the message"
        assert not found.get("disabled"), f"component {custom_id or label!r} is disabled"
        payload = self._base(3, user, channel_id=int(message["channel_id"]))
        payload["message"] = message
        data: dict = {"custom_id": found["custom_id"], "component_type": found["type"]}
        if found["type"] == 3:
            data["values"] = list(values or [])
        payload["data"] = data
        return payload

    def submit(self, modal: dict, user: Member, /, **values: str) -> dict:
        """Submit the modal the bot sent, with `values` by input custom_id (others keep their
        default value, as Discord's client would)."""
        payload = self._base(5, user)
        rows = []
        for comp in modal["components"]:
            inner = comp["component"] if comp["type"] == 18 else comp["components"][0]
            value = values.get(inner["custom_id"], inner.get("value") or "")
            answered = {"type": 4, "custom_id": inner["custom_id"], "value": value}
            if comp["type"] == 18:
                rows.append({"type": 18, "component": answered})
            else:
                rows.append({"type": 1, "components": [answered]})
        payload["data"] = {"custom_id": modal["custom_id"], "components": rows}
        return payload

    # --- Feeding -----------------------------------------------------------------------------

    def feed(self, payload: dict) -> Exchange:
        """Hand the payload to discord.py's gateway parser, as the gateway would."""
        self.fake.register_interaction(payload)
        exchange = Exchange(payload, self.fake, fed_at=time.monotonic())
        self.bot._connection.parsers["INTERACTION_CREATE"](payload)
        return exchange

    async def send(self, payload: dict, *, timeout: float = 30.0) -> Exchange:
        """Feed one interaction and wait until the bot has finished with it."""
        baseline = asyncio.all_tasks()
        exchange = self.feed(payload)
        await self.settle(baseline, timeout=timeout)
        exchange.done_at = time.monotonic()
        return exchange

    async def send_many(self, payloads: list[dict], *, timeout: float = 600.0) -> list[Exchange]:
        baseline = asyncio.all_tasks()
        exchanges = [self.feed(p) for p in payloads]
        await self.settle(baseline, timeout=timeout)
        now = time.monotonic()
        for ex in exchanges:
            ex.done_at = now
        return exchanges

    async def settle(self, baseline: set | None = None, *, timeout: float = 30.0) -> None:
        """Wait until every task started since `baseline` is finished (the bot is idle)."""
        baseline = baseline or set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        current = asyncio.current_task()
        while True:
            pending = [
                t
                for t in asyncio.all_tasks()
                if t not in baseline and t is not current and not t.done()
            ]
            if not pending:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"bot still busy after {timeout}s: {pending[:5]}")
            await asyncio.wait(pending, timeout=remaining)


@dataclass
class Members:
    """The cast, as Discord would describe them."""

    alice: Member = field(
        default_factory=lambda: Member(222_222_222_222_222_201, "alice", display="Alice Liddell")
    )
    bob: Member = field(
        default_factory=lambda: Member(222_222_222_222_222_202, "bob", display="Bob Builder")
    )
    carol: Member = field(
        default_factory=lambda: Member(222_222_222_222_222_203, "carol", display="Carol Danvers")
    )
    mod: Member = field(
        default_factory=lambda: Member(333_333_333_333_333_301, "mod", MOD_PERMISSIONS)
    )
