"""Stateless modals: their state lives in the `custom_id` (like `DynamicItem` buttons), they are
never kept in discord.py's view store, and `ModalRouter` dispatches submissions by pattern, so a
modal opened before a restart still works after it.

Split from `discordbot/interactions.py` (issue 20); still importable from there."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

import discord

from . import limits
from .replies import observe

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
