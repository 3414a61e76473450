"""What every interaction use case starts from: the market of this guild a member named, the
guild's permission policy, and the short texts the replies share."""

from __future__ import annotations

from markets import selectors as market_selectors
from markets.amm import SHARE_SCALE
from markets.errors import (
    MSG_NOT_OPEN,
    MarketStateError,
)
from markets.selectors import MarketSummary
from points import selectors as points_selectors

from .. import parsing
from ..permissions import Actor, Policy


def market_in_guild(*, guild_id: int, market: object) -> MarketSummary:
    """The market a member typed or picked, if it belongs to this guild."""
    return market_selectors.market_get(market_id=parsing.market_ref(market), guild_id=guild_id)


def member_id(actor: Actor) -> int:
    """The Discord id of the member an interaction describes (never None for one)."""
    if actor.user_id is None:
        raise TypeError("an interaction's actor is a Discord member")
    return actor.user_id


def policy_get(*, guild_id: int) -> Policy:
    return Policy.from_settings(points_selectors.guild_settings_get(guild_id=guild_id))


def percent_text(p: float) -> str:
    return f"{p * 100:.1f}%"


def points_text(n: int) -> str:
    return f"{n:,}"


def shares_text(micro: int) -> str:
    """Shares to two decimals, as Discord shows them (exact values stay in the admin)."""
    return f"{micro / SHARE_SCALE:,.2f}"


def _ensure_open(summary: MarketSummary) -> None:
    if not summary.is_open:
        raise MarketStateError(MSG_NOT_OPEN.format(market_id=summary.id, status=summary.status))
