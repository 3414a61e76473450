"""A server's seasons built through the real services (issue 26, docs/domain.md §10), for the
back-office tests of seasons: "Book club" with season 1 closed (Bob won, Carol lost, Alice traded
both ways) and its table posted with Bob rewarded, season 2 running; "Chess club" with season 1
running."""

from __future__ import annotations

import datetime as dt

from betting.seasons import season_close
from markets import services
from points import seasons as ledger_seasons
from points.models import Season
from points.rules import SYSTEM, Actor
from points.services import member_seen
from tests.conftest import ALICE, BOB, CAROL, GUILD, MOD
from tests.selector_helpers import OTHER_GUILD, bet, close, create, set_guild

REWARD_ROLE = 555_555_555_555_555_611


def seed_seasons() -> Season:
    """Season 1 of Book club, closed, posted, Bob rewarded."""
    for user, name in ((ALICE, "Alice Adams"), (BOB, "Bob Brown"), (CAROL, "Carol Chen")):
        member_seen(guild_id=GUILD, user_id=user, display_name=name, username=name.split()[0])
    member_seen(
        guild_id=GUILD, user_id=MOD, display_name="Mod", username="mod", guild_name="Book club"
    )
    member_seen(
        guild_id=OTHER_GUILD, user_id=MOD, display_name="Mod", username="mod",
        guild_name="Chess club",
    )  # fmt: skip
    set_guild(fee_bps=0)
    for guild_id in (GUILD, OTHER_GUILD):
        ledger_seasons.season_configure(
            guild_id=guild_id, actor=SYSTEM, idempotency_key=f"seasons:{guild_id}",
            length="month", role_id=REWARD_ROLE,
        )  # fmt: skip
    market = create("season-admin")
    bet(market, BOB, 0, 300)
    bet(market, CAROL, 1, 100)
    bet(market, ALICE, 1, 50)
    close(market)
    services.market_resolve(
        market_id=market.pk, outcome=0, reason="it rained", idempotency_key="res:season-admin",
        actor=Actor.member(MOD, manage_guild=True),
    )  # fmt: skip
    season = Season.objects.get(guild_id=GUILD, number=1)
    assert season_close(season.pk, season.ends_at + dt.timedelta(seconds=1))
    # What the bot records once it posted the table and gave the role (discordbot.cogs.seasons).
    assert ledger_seasons.season_announced(season_id=season.pk)
    ledger_seasons.season_posted(season_id=season.pk, rewarded=[BOB])
    return Season.objects.get(pk=season.pk)
