"""What the bot's helpers need of the running bot, as a protocol (a leaf module: it imports
nothing of `discordbot`). Modules that `bot.py` itself imports type their bot with `BotLike`
instead of importing `PredictionBot`, so no import cycle hides behind `TYPE_CHECKING`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class BotConfigLike(Protocol):
    @property
    def answer_budget(self) -> float: ...
    @property
    def gate_budget(self) -> float: ...
    @property
    def answer_retry_base(self) -> float: ...
    @property
    def answer_retry_max(self) -> float: ...


class PolicyPeek(Protocol):
    def peek(self, guild_id: int) -> Any: ...


class RateLimitsLike(Protocol):
    async def check(self, *, guild_id: int, user_id: Any, rules: Any) -> Any: ...


class SeenIdsLike(Protocol):
    def add(self, id_: int) -> bool: ...
    def __contains__(self, id_: object) -> bool: ...


class BotLike(Protocol):
    """The services `PredictionBot` offers its helpers: database and cache threads, background
    tasks, the cached guild policies, the configuration, and the members with answers waiting."""

    @property
    def config(self) -> BotConfigLike: ...
    @property
    def policies(self) -> PolicyPeek: ...
    @property
    def cache_is_local(self) -> bool: ...
    @property
    def ratelimits(self) -> RateLimitsLike: ...

    @property
    def seen_here(self) -> SeenIdsLike: ...

    unseen: set[tuple[int, int]]

    async def db(
        self, func: Callable[..., T], /, *, budget: float | None = None, **kwargs: Any
    ) -> T: ...
    async def db_fast(self, func: Callable[..., T], /, **kwargs: Any) -> T: ...
    async def cache_call(self, func: Callable[..., T], /, **kwargs: Any) -> T: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task: ...
