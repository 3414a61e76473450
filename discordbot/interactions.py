"""Answering interactions: the one place that decides how and when the bot replies (STYLE §7).

`respond()` runs every command, button, select and modal submission the same way:
1. rate limits (DOMAIN §7; moderators exempt) are checked against the cache, not the database,
   so a refusal is immediate;
2. the interaction is deferred *before* any database work, because a trade can wait on a row
   lock and Discord drops interactions not answered within 3 seconds (DOMAIN §8);
3. the body runs (parse → service or selector through `bot.db` → render) and returns a `Reply`;
4. a `DomainError` becomes its short message, ephemeral; anything else becomes "Something went
   wrong (error id …)" and the same id is logged with the traceback.

Modals are stateless: their state lives in the `custom_id` (like `DynamicItem` buttons), they are
never kept in discord.py's view store, and `ModalRouter` dispatches submissions by pattern, so a
modal opened before a restart still works after it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from ops import logging as ops_logging
from ops import metrics
from points.errors import DomainError

from . import limits, ratelimit
from .permissions import Actor, is_moderator

if TYPE_CHECKING:
    from .bot import PredictionBot

logger = logging.getLogger(__name__)

MSG_ERROR = (
    "Something went wrong (error id {error_id}). Nothing was changed by the error; please try "
    "again, and mention the id to a moderator if it keeps happening."
)
MSG_GUILD_ONLY = "This bot works inside a server, not in direct messages."
MSG_STALE = "This button or form is from an older version of the bot; use the slash commands."


def idempotency_key(interaction: discord.Interaction) -> str:
    """`discord:<interaction id>`: Discord gives every interaction a unique id, and re-delivers the
    same id when it retries, so a repeated interaction repeats no effect (DOMAIN §3)."""
    return f"discord:{interaction.id}"


def new_error_id() -> str:
    return ops_logging.new_error_id()


def error_capture(exc: BaseException, **fields: Any) -> str:
    """Log `exc` under a new error id bound into the JSON log line and the Sentry event (the same
    id the member is shown)."""
    return ops_logging.error_capture(exc, **fields)


@dataclass
class Reply:
    """What to show. `ephemeral` replies are seen by the member alone; `edit` replaces the
    message a button was clicked on instead of sending a new one."""

    content: str = ""
    embeds: list[discord.Embed] = field(default_factory=list)
    view: discord.ui.View | None = None
    ephemeral: bool = True
    edit: bool = False
    after_send: Callable[[discord.Message], Awaitable[None]] | None = None

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "content": limits.fit(self.content, limits.CONTENT) if self.content else None,
            "embeds": [limits.embed_fit(e) for e in self.embeds],
        }
        if self.view is not None:
            out["view"] = self.view
        return out


def error_reply(exc: BaseException, *, action: str, interaction: discord.Interaction) -> Reply:
    if isinstance(exc, DomainError):
        return Reply(content=exc.message, ephemeral=True)
    error_id = error_capture(
        exc,
        logger=logger,
        message=f"interaction {action} failed",
        interaction_id=interaction.id,
        guild_id=interaction.guild_id,
        user_id=getattr(interaction.user, "id", None),
    )
    return Reply(content=MSG_ERROR.format(error_id=error_id), ephemeral=True)


def age(interaction: discord.Interaction) -> float:
    """Seconds since Discord created the interaction (its id is a timestamp): the clock Discord's
    3-second deadline runs on. Falls back to 0 when the local clock is behind Discord's."""
    return max(0.0, time.time() - interaction.created_at.timestamp())


def observe(interaction: discord.Interaction, action: str, outcome: str = "ok") -> None:
    """Record an interaction answered at once (a modal or a refusal) in the metrics."""
    elapsed = age(interaction)
    metrics.interaction_observed(action, outcome, elapsed, elapsed)


def actor(interaction: discord.Interaction) -> Actor:
    return Actor.from_interaction(interaction)


async def rate_limited(
    interaction: discord.Interaction, rules: Sequence[ratelimit.Rule]
) -> ratelimit.Limited | None:
    """Count this interaction against `rules`; moderators are exempt. Uses only the interaction
    and the bot's cached guild policy, never the database."""
    if not rules or interaction.guild_id is None:
        return None
    bot: PredictionBot = interaction.client  # type: ignore[assignment]
    who = actor(interaction)
    policy = bot.policies.peek(interaction.guild_id)
    if is_moderator(policy, who):
        return None
    if policy is not None:
        rules = ratelimit.with_guild_limit(rules, policy.requests_per_minute)
    limited = await bot.cache_call(
        ratelimit.check, guild_id=interaction.guild_id, user_id=who.user_id, rules=rules
    )
    if limited is not None:
        metrics.ratelimit_refused(limited.rule.metric_scope)
    return limited


async def respond(
    interaction: discord.Interaction,
    body: Callable[[], Awaitable[Reply]],
    *,
    action: str,
    ephemeral: bool = True,
    update: bool = False,
    rules: Sequence[ratelimit.Rule] = ratelimit.REQUEST,
) -> discord.Message | None:
    """Answer `interaction` with what `body` returns; see the module docstring for the steps.
    `ephemeral` is how the "thinking…" placeholder is shown (and so the reply, unless the reply
    is an error); `update` defers a component click as an edit of its own message. Returns the
    message that was sent or edited, if any."""
    first: float | None = None
    outcome = "ok"
    try:
        if interaction.guild_id is None:
            await interaction.response.send_message(MSG_GUILD_ONLY, ephemeral=True)
            outcome, first = "refused", age(interaction)
            return None
        limited = await rate_limited(interaction, rules)
        if limited is not None:
            await interaction.response.send_message(limited.message, ephemeral=True)
            outcome, first = "refused", age(interaction)
            return None
        if update:
            await interaction.response.defer()
        else:
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        first = age(interaction)
        try:
            reply = await body()
        except Exception as exc:
            outcome = "refused" if isinstance(exc, DomainError) else "error"
            reply = error_reply(exc, action=action, interaction=interaction)
        return await deliver(interaction, reply, placeholder_ephemeral=ephemeral, update=update)
    except Exception as exc:  # Discord refused or lost a reply: nothing more can be shown
        outcome = "error"
        logger.error(
            "interaction %s: the reply could not be delivered (error id %s): %s",
            action,
            new_error_id(),
            exc,
            exc_info=exc,
        )
        return None
    finally:
        metrics.interaction_observed(action, outcome, first, age(interaction))


async def deliver(
    interaction: discord.Interaction,
    reply: Reply,
    *,
    placeholder_ephemeral: bool,
    update: bool,
) -> discord.Message | None:
    """Send `reply` after a defer: edit the placeholder (or the clicked message) when that shows
    it the way it should be seen, otherwise send a follow-up."""
    kwargs = reply.kwargs()
    if update:
        if reply.edit:
            # No text in the reply keeps the message's own text: `content: null` would erase
            # it (an announcement's line above the market embed).
            message = await interaction.edit_original_response(**_followup(kwargs))
        else:
            message = await interaction.followup.send(
                wait=True, ephemeral=reply.ephemeral, **_followup(kwargs)
            )
    elif reply.ephemeral == placeholder_ephemeral or placeholder_ephemeral:
        message = await interaction.edit_original_response(**kwargs)
    else:
        # A public placeholder but a private reply (usually a refusal): remove the placeholder
        # so the channel does not keep an empty "thinking" message.
        await interaction.delete_original_response()
        message = await interaction.followup.send(wait=True, ephemeral=True, **_followup(kwargs))
    if reply.after_send is not None and message is not None:
        try:
            await reply.after_send(message)
        except Exception:  # the member has their answer; only the bookkeeping failed
            logger.exception("after-send step of interaction %s failed", interaction.id)
    return message


def _followup(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if out.get("content") is None:
        out.pop("content")
    return out


async def answer_now(interaction: discord.Interaction, content: str) -> None:
    """An immediate ephemeral answer (no database involved), if nobody answered yet."""
    if interaction.response.is_done():
        await interaction.followup.send(limits.fit(content, limits.CONTENT), ephemeral=True)
    else:
        await interaction.response.send_message(limits.fit(content, limits.CONTENT), ephemeral=True)


# --- Stateless modals ------------------------------------------------------------------------


ModalHandler = Callable[[discord.Interaction, "re.Match[str]", dict[str, str]], Awaitable[None]]


def modal_values(components: Sequence[dict]) -> dict[str, str]:
    """custom_id → value of every text input in a modal submission (action rows or labels)."""
    values: dict[str, str] = {}
    for component in components or []:
        kind = component.get("type")
        if kind == 1:
            values.update(modal_values(component.get("components", [])))
        elif kind == 18 and component.get("component"):
            values.update(modal_values([component["component"]]))
        elif "custom_id" in component and "value" in component:
            values[component["custom_id"]] = component.get("value") or ""
    return values


class ModalRouter:
    """Dispatches modal submissions by `custom_id` pattern (the modal's state lives there)."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], ModalHandler]] = []

    def add(self, pattern: str, handler: ModalHandler) -> None:
        self._routes.append((re.compile(pattern), handler))

    def match(self, custom_id: str) -> tuple[re.Match[str], ModalHandler] | None:
        for pattern, handler in self._routes:
            found = pattern.fullmatch(custom_id)
            if found:
                return found, handler
        return None

    async def dispatch(self, interaction: discord.Interaction) -> bool:
        data: dict = interaction.data or {}  # type: ignore[assignment]
        routed = self.match(str(data.get("custom_id", "")))
        if routed is None:
            return False
        found, handler = routed
        await handler(interaction, found, modal_values(data.get("components", [])))
        return True


async def send_modal(interaction: discord.Interaction, modal: discord.ui.Modal) -> None:
    """Show `modal` without keeping it in discord.py's view store: `ModalRouter` handles the
    submission from its `custom_id`, so nothing is lost (or leaked) if it is never submitted."""
    modal.stop()
    await interaction.response.send_modal(modal)
    observe(interaction, f"modal:{modal.custom_id.split(':')[2]}")


def text_input(
    *,
    custom_id: str,
    label: str,
    description: str = "",
    placeholder: str = "",
    default: str = "",
    required: bool = True,
    max_length: int | None = None,
    min_length: int | None = None,
    paragraph: bool = False,
) -> discord.ui.Label:
    """A text input under a label (Discord's modal layout), cut to the §8 limits."""
    field_input: discord.ui.TextInput = discord.ui.TextInput(
        custom_id=custom_id,
        placeholder=limits.fit(placeholder, limits.INPUT_PLACEHOLDER) or None,
        default=default or None,
        required=required,
        max_length=max_length,
        min_length=min_length,
        style=discord.TextStyle.paragraph if paragraph else discord.TextStyle.short,
    )
    return discord.ui.Label(
        text=limits.fit(label, limits.INPUT_LABEL),
        description=limits.fit(description, limits.DESCRIPTION) or None,
        component=field_input,
    )


def modal(custom_id: str, title: str, *inputs: discord.ui.Item) -> discord.ui.Modal:
    m = discord.ui.Modal(title=limits.fit(title, limits.MODAL_TITLE), custom_id=custom_id)
    for item in inputs:
        m.add_item(item)
    return m
