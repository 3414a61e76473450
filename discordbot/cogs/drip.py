"""DRIP commands (docs/drip.md): `/drip deposit`, `/drip withdraw`, `/drip balance`, and
`/settings drip` (Manage Server) to link the server's DRIP realm.

The cog owns the process's `DripClient` (its circuit breaker is what `/drip deposit` consults to
answer at once while DRIP is down) and registers the `drip` check of `/health/external`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypedDict

import discord
from discord import app_commands
from discord.ext import commands, tasks

from core.secrets import secret_register
from drip import bridge, crypto, selectors, services
from drip.bridge import Db
from drip.client import DripClient
from drip.errors import reason_words
from drip.health import drip_health
from drip.models import DripTransfer
from ops import health
from points.errors import MAX_AMOUNT, DomainError
from points.services import wallet_get_or_create

from .. import render
from ..interactions import Reply, actor, idempotency_key
from ..leases import notifier_lease
from ..permissions import require_admin
from ..responders import responder
from ..selectors import dm_enabled

if TYPE_CHECKING:
    from ..bot import PredictionBot

logger = logging.getLogger(__name__)

MSG_DEPOSITED = (
    "Moved **{amount} points** from DRIP to your wallet here. Wallet: {wallet} points{drip}."
)
MSG_DEPOSIT_STATE = "Deposit #{id} of {amount} points is {status}: {detail}"
MSG_WITHDRAW_QUEUED = (
    "**{amount} points** left your wallet and are on their way to DRIP (transfer #{id}); they "
    "usually arrive within a minute. If DRIP refuses them they come back here and you get a DM."
)
MSG_REVERSED_DM = (
    "Your withdrawal of **{amount} points** to DRIP (transfer #{id}) did not go through: "
    "{reason}. The points are back in your wallet."
)
MSG_BALANCE = "Here: **{wallet} points**.\nDRIP: {drip}."
MSG_BALANCE_PENDING = "\nOn the way to DRIP: {pending} points."
MSG_BALANCE_DOUBT = "\n{n} of your transfers wait for a moderator to check DRIP."
MSG_LINKED = (
    "Linked DRIP realm `{realm}`{point}. Daily limits per member: deposit {deposit}, withdraw "
    "{withdraw}.{auto} The API key is stored encrypted and is never shown again."
)

STATE_DETAIL: dict[str, str] = {
    DripTransfer.Status.CONFIRMED: "done",
    DripTransfer.Status.SENDING: "still being sent to DRIP",
    DripTransfer.Status.FAILED: "DRIP refused it; nothing was moved",
    DripTransfer.Status.IN_DOUBT: "waiting for a moderator to check DRIP",
    DripTransfer.Status.PENDING: "queued",
}


def reversal_reason(row: DripTransfer) -> str:
    """Why a withdrawal came back, in member words (never DRIP's developer text)."""
    if row.resolution.startswith("moderator"):
        return "a moderator checked DRIP and found it was not applied"
    return reason_words(row.error_message)


class MemberMove(TypedDict):
    """A member's deposit or withdrawal as `drip.bridge` takes it, but the amount."""

    db: Db
    client: DripClient
    guild_id: int
    user_id: int
    idempotency_key: str


def _limit(value: int) -> str:
    return "no limit" if not value else f"{value:,} points"


class Drip(commands.Cog):
    """Move points between this server's DRIP realm and the markets."""

    drip = app_commands.Group(
        name="drip", description="Move points between DRIP and this server", guild_only=True
    )

    def __init__(self, bot: PredictionBot, client: DripClient) -> None:
        self.bot = bot
        self.client = client
        self._dm_channels: dict[int, int] = {}
        self.notify_loop.change_interval(seconds=bot.config.notify_seconds)

    async def cog_load(self) -> None:
        if self.bot.config.background_tasks:
            notifier_lease(self.bot)
            self.notify_loop.start()

    @tasks.loop(seconds=5)
    async def notify_loop(self) -> None:
        if not notifier_lease(self.bot).held:  # the notifier's process tells reversals
            return
        try:
            await self.notify_reversals()
        except Exception:  # the next run retries
            logger.exception("DRIP reversal DMs failed")

    @notify_loop.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()

    async def notify_reversals(self) -> int:
        """DM each member whose withdrawal came back (refused by DRIP or reversed by a
        moderator), once; members who turned DMs off (`/notifications off`) or whose DMs are
        closed are skipped. Returns how many DMs were sent."""
        sent = 0
        for row in await self.bot.db(selectors.drip_reversals_to_notify):
            try:
                if await self.bot.db(dm_enabled, guild_id=row.guild_id, user_id=row.user_id):
                    await self._dm(
                        row.user_id,
                        MSG_REVERSED_DM.format(
                            amount=render.points(row.amount), id=row.pk, reason=reversal_reason(row)
                        ),
                    )
                    sent += 1
            except discord.Forbidden:
                logger.info("DMs of %s are closed; reversal #%s not told", row.user_id, row.pk)
            except discord.HTTPException:
                logger.warning("could not DM reversal #%s; retrying later", row.pk)
                continue
            await self.bot.db(services.drip_member_notified, transfer_id=row.pk)
        return sent

    async def _dm(self, user_id: int, content: str) -> None:
        channel_id = self._dm_channels.get(user_id)
        if channel_id is None:
            data = await self.bot.http.start_private_message(user_id)
            channel_id = self._dm_channels[user_id] = int(data["id"])
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        await channel.send(content=content)

    async def cog_unload(self) -> None:
        self.notify_loop.cancel()
        health.unregister_external_check("drip")
        group = self.bot.tree.get_command("settings")
        if isinstance(group, app_commands.Group):
            group.remove_command("drip")
        await self.client.close()

    def _member_move(self, interaction: discord.Interaction) -> MemberMove:
        """What `bridge.deposit` and `bridge.withdraw` need besides the amount."""
        assert interaction.guild_id is not None  # `respond` answered outside a guild already
        return {
            "db": self.bot.db,
            "client": self.client,
            "guild_id": interaction.guild_id,
            "user_id": interaction.user.id,
            "idempotency_key": idempotency_key(interaction),
        }

    @drip.command(name="deposit")
    @app_commands.describe(amount="DRIP points to move into your wallet here")
    @responder("drip.deposit")
    async def deposit(
        self, interaction: discord.Interaction, amount: app_commands.Range[int, 1, MAX_AMOUNT]
    ) -> Reply:
        """Move points from your DRIP balance into your wallet here."""
        result = await bridge.deposit(**self._member_move(interaction), amount=amount)
        row = result.transfer
        if row.status != DripTransfer.Status.CONFIRMED:  # a repeated interaction
            return Reply(
                content=MSG_DEPOSIT_STATE.format(
                    id=row.pk,
                    amount=render.points(row.amount),
                    status=row.get_status_display(),
                    detail=STATE_DETAIL[row.status],
                )
            )
        drip = (
            f"; DRIP: {render.points(result.drip_balance)} points"
            if result.drip_balance is not None
            else ""
        )
        return Reply(
            content=MSG_DEPOSITED.format(
                amount=render.points(amount), wallet=render.points(result.wallet), drip=drip
            )
        )

    @drip.command(name="withdraw")
    @app_commands.describe(amount="Points to move from your wallet here to DRIP")
    @responder("drip.withdraw")
    async def withdraw(
        self, interaction: discord.Interaction, amount: app_commands.Range[int, 1, MAX_AMOUNT]
    ) -> Reply:
        """Move points from your wallet here to your DRIP balance."""
        row = await bridge.withdraw(**self._member_move(interaction), amount=amount)
        return Reply(
            content=MSG_WITHDRAW_QUEUED.format(amount=render.points(row.amount), id=row.pk)
        )

    @drip.command(name="balance")
    @responder("drip.balance")
    async def balance(self, interaction: discord.Interaction) -> Reply:
        """Your points here and on DRIP, side by side."""
        guild_id, user_id = interaction.guild_id, interaction.user.id
        assert guild_id is not None  # `respond` answered outside a guild already
        await self.bot.db(wallet_get_or_create, guild_id=guild_id, user_id=user_id)
        summary = await self.bot.db(
            selectors.drip_member_summary, guild_id=guild_id, user_id=user_id
        )
        try:
            found = await bridge.drip_balance(
                db=self.bot.db, client=self.client, guild_id=guild_id, user_id=user_id
            )
            drip = (
                f"**{render.points(found)} points**"
                if found is not None
                else "you are not a member of this server's realm yet"
            )
        except DomainError as exc:
            if exc.code == "drip_not_linked":
                raise
            drip = f"not available right now ({exc.message})"
        text = MSG_BALANCE.format(wallet=render.points(summary.wallet), drip=drip)
        if summary.pending_withdrawals:
            text += MSG_BALANCE_PENDING.format(pending=render.points(summary.pending_withdrawals))
        if summary.in_doubt:
            text += MSG_BALANCE_DOUBT.format(n=summary.in_doubt)
        return Reply(content=text)


def _keep_key_secret(*args: object, api_key: str | None = None, **kwargs: object) -> None:
    """Before anything is counted or logged, the API key joins the secrets the logs redact;
    refuses nothing."""
    if api_key:
        secret_register(api_key.strip())


def settings_drip_command(cog: Drip) -> app_commands.Command:
    """`/settings drip`, added to the Settings cog's group (Manage Server)."""

    @app_commands.command(name="drip")
    @app_commands.describe(
        realm_id="The DRIP realm (project) id from the DRIP dashboard header",
        api_key="A DRIP API key for the realm (kept encrypted; leave empty to keep the stored one)",
        realm_point_id="The realm point (currency) id; empty = the realm's default currency",
        deposit_limit="Points one member may deposit per day (0 = no limit)",
        withdraw_limit="Points one member may withdraw per day (0 = no limit)",
        auto_withdraw="Send market payouts and refunds to members' DRIP balance automatically",
    )
    @responder("settings.drip", refuse_first=_keep_key_secret)
    async def settings_drip(
        interaction: discord.Interaction,
        realm_id: app_commands.Range[str, 1, 64],
        api_key: app_commands.Range[str, 1, 500] | None = None,
        realm_point_id: app_commands.Range[str, 1, 64] | None = None,
        deposit_limit: app_commands.Range[int, 0, MAX_AMOUNT] | None = None,
        withdraw_limit: app_commands.Range[int, 0, MAX_AMOUNT] | None = None,
        auto_withdraw: bool | None = None,
    ) -> Reply:
        """Link this server's DRIP realm."""
        require_admin(actor(interaction))
        if not crypto.encryption_available():
            raise crypto.EncryptionUnavailable(crypto.MSG_NO_ENCRYPTION_KEY)
        link = await cog.bot.db(
            services.drip_link_set,
            guild_id=interaction.guild_id,
            realm_id=realm_id,
            realm_point_id=realm_point_id or "",
            api_key=api_key,
            deposit_limit_per_day=deposit_limit,
            withdraw_limit_per_day=withdraw_limit,
            auto_withdraw_payouts=auto_withdraw,
            actor_id=interaction.user.id,
            idempotency_key=idempotency_key(interaction),
        )
        point = f" (currency `{link.realm_point_id}`)" if link.realm_point_id else ""
        return Reply(
            content=MSG_LINKED.format(
                realm=link.realm_id,
                point=point,
                deposit=_limit(link.deposit_limit_per_day),
                withdraw=_limit(link.withdraw_limit_per_day),
                auto=" Payouts and refunds go to DRIP automatically."
                if link.auto_withdraw_payouts
                else "",
            )
        )

    return settings_drip


async def setup(bot: PredictionBot) -> None:
    client = bot.config.extra.get("drip_client") or DripClient()
    cog = Drip(bot, client)
    await bot.add_cog(cog)
    group = bot.tree.get_command("settings")
    if isinstance(group, app_commands.Group):
        group.add_command(settings_drip_command(cog))
    health.register_external_check("drip", lambda: drip_health(client.breaker))
