"""The final answer replaces the interim word (issue 27, found by the soak: bench/soak.py).

While the database restarts or is slow, a member reads an interim word ("the database is
restarting — retrying", "still working"); the final answer must take its place, where the member
reads it:

- after a button click (a quote's Confirm), the interim word is a follow-up and the answer
  edits the clicked message: the follow-up must not stay behind saying "retrying";
- for a public reply (`/leaderboard`, `/tip`), the interim word shows on the public "thinking"
  placeholder, which the answer then edits: the placeholder must not be deleted for it (the
  answer's edit then met 404 10008 and went by DM, the channel keeping the interim word).

The real bot, the strict fake Discord, a private PostgreSQL behind the fault proxy."""

from __future__ import annotations

import asyncio
import time

import pytest

from betting.models import Trade
from points.audit import ledger_audit
from points.models import Transfer
from tests.discordbot.conftest import db, make_market
from tests.discordbot.fake_discord import EPHEMERAL
from tests.discordbot.harness import DEFERRED_UPDATE, Exchange, Harness, Member, message_text

from .test_truth_drills import INTERIM, open_wallets

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BOB = Member(555_555_555_555_561_001, "bob")
CAROL = Member(555_555_555_555_561_002, "carol")
OUTAGE = 1.5
"""Seconds the database refuses connections (a restart) or stops answering (slow)."""


def told_interim(ex: Exchange) -> bool:
    """The member was shown an interim word on the way (the drill met the fault)."""
    return any(
        any(part in message_text(r.json or {}) for part in INTERIM)
        for r in ex.requests
        if r.json and r.status and r.status < 300
    )


def left_interim(ex: Exchange) -> list[str]:
    """Messages of this interaction still showing an interim word."""
    return [
        message_text(m)[:60]
        for m in ex.messages
        if any(part in message_text(m) for part in INTERIM)
    ]


async def fault(h: Harness, proxy, kind: str) -> None:
    """`restart`: connections cut and refused for `OUTAGE` s; `slow`: the database stops
    answering for `OUTAGE` s (past the bot's answer budget, set to 0.3 s)."""
    if kind == "restart":
        proxy.refuse_for(OUTAGE)
    else:
        proxy.freeze()
        asyncio.get_running_loop().call_later(OUTAGE, proxy.thaw)


@pytest.mark.parametrize("kind", ["restart", "slow"])
async def test_confirm_click_ends_on_the_receipt_not_on_the_interim_word(through_proxy, kind):
    """Confirm on a quote while the database restarts (or is slow): the member reads the
    interim word in a follow-up, then the quote becomes the receipt — and the follow-up does not
    stay behind saying "retrying" (the soak's 12 unanswered Confirm clicks)."""
    h = await Harness.start(answer_budget=0.3, answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        market = await make_market(h, creator=CAROL.id)
        await open_wallets(h, [BOB])
        quote = await h.send(h.command("bet", BOB, market=str(market.id), outcome="1", amount=50))
        assert "Quote" in quote.text
        await fault(h, through_proxy, kind)
        ex = await h.send(h.click(quote.reply, BOB, label="Confirm"), timeout=60)
        await asyncio.sleep(max(0.0, through_proxy.refused_until - time.monotonic()))
        through_proxy.thaw()
        key = f"discord:{quote.payload['id']}:confirm"
        traded = await db(h, lambda: Trade.objects.filter(idempotency_key=key).count())

        assert ex.response_type == DEFERRED_UPDATE
        assert told_interim(ex), [message_text(r.json or {})[:60] for r in ex.requests if r.json]
        assert traded == 1
        assert ex.text.startswith("✅ You bought"), ex.text[:120]
        assert left_interim(ex) == []
        assert h.fake.dms(BOB.id) == []
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        through_proxy.thaw()
        await h.close()


@pytest.mark.parametrize("kind", ["restart", "slow"])
async def test_public_leaderboard_after_an_interim_word_is_answered_in_the_channel(
    through_proxy, kind
):
    """`/leaderboard` (public) while the database restarts (or is slow): the interim word shows
    on the public placeholder and the leaderboard replaces it there — not deleted, not a DM."""
    h = await Harness.start(answer_budget=0.3, answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        await open_wallets(h, [BOB, CAROL])
        await fault(h, through_proxy, kind)
        ex = await h.send(h.command("leaderboard", BOB), timeout=60)
        through_proxy.thaw()

        assert told_interim(ex), [message_text(r.json or {})[:60] for r in ex.requests if r.json]
        assert ex.original is not None, "the public placeholder was deleted"
        assert not int(ex.original["flags"]) & EPHEMERAL
        assert "Richest members" in message_text(ex.original), message_text(ex.original)[:120]
        assert left_interim(ex) == []
        assert h.fake.dms(BOB.id) == []
        assert [r for r in ex.requests if r.method == "DELETE"] == []
    finally:
        through_proxy.thaw()
        await h.close()


async def test_public_tip_during_a_restart_is_answered_in_the_channel(through_proxy):
    """`/tip` (a public reply that writes) during a restart: one transfer, told in the channel
    on the placeholder that showed "restarting"."""
    h = await Harness.start(answer_budget=0.3, answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        await open_wallets(h, [BOB, CAROL])
        through_proxy.refuse_for(OUTAGE)
        ex = await h.send(h.command("tip", BOB, member=CAROL, amount=25), timeout=60)
        await asyncio.sleep(max(0.0, through_proxy.refused_until - time.monotonic()))
        key = f"discord:{ex.payload['id']}"
        moved = await db(h, lambda: Transfer.objects.filter(idempotency_key=key).count())

        assert told_interim(ex), [message_text(r.json or {})[:60] for r in ex.requests if r.json]
        assert moved == 1
        assert ex.original is not None, "the public placeholder was deleted"
        assert not int(ex.original["flags"]) & EPHEMERAL
        assert left_interim(ex) == [] and "25" in ex.text, ex.text[:120]
        assert h.fake.dms(BOB.id) == []
        assert await db(h, lambda: ledger_audit().ok)
    finally:
        await h.close()


async def test_confirm_answer_and_interim_removal_get_through_discord_failing(through_proxy):
    """As in the soak's last window: when the answer is due, Discord answers 429 (without
    `Via`: discord.py gives up at once) to the edits and deletes of the interaction's messages.
    The answer and the interim follow-up's removal are retried until Discord takes them."""
    h = await Harness.start(answer_budget=0.3, answer_retry_base=0.2, answer_retry_max=1.0)
    try:
        market = await make_market(h, creator=CAROL.id)
        await open_wallets(h, [BOB])
        quote = await h.send(h.command("bet", BOB, market=str(market.id), outcome="1", amount=50))
        baseline = asyncio.all_tasks()
        through_proxy.freeze()
        ex = h.feed(h.click(quote.reply, BOB, label="Confirm"))
        assert await asyncio.to_thread(
            h.fake.wait_for,
            lambda: any(r.method == "POST" and r.status == 200 for r in ex.requests[1:]),
            10,
        ), "no interim follow-up"
        limited = {"message": "You are being rate limited.", "retry_after": 0.2, "global": False}
        for method in ("PATCH", "DELETE"):
            h.fake.fail(method, r"^/webhooks/", 429, limited, times=3)
        through_proxy.thaw()
        await h.settle(baseline, timeout=60)
        refused = [r for r in ex.requests if r.status == 429]

        assert {r.method for r in refused} == {"PATCH", "DELETE"}, refused
        assert ex.text.startswith("✅ You bought"), ex.text[:120]
        assert left_interim(ex) == []
        assert h.fake.dms(BOB.id) == []
    finally:
        through_proxy.thaw()
        await h.close()
