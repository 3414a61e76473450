"""A demo guild with members and markets in every state, built through the real services."""

import datetime as dt
import random

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from betting import services as betting_services
from markets import services
from markets.models import Market
from points.audit import ledger_audit
from points.rules import SYSTEM, Actor
from points.services import guild_settings_get_or_create, member_seen, points_grant

DEMO_GUILD = 900_000_000_000_000_001
MEMBERS = [900_000_000_000_001_000 + i for i in range(1, 13)]
MODERATORS = [900_000_000_000_002_001, 900_000_000_000_002_002]
# How the bot would have seen them (the member directory, issue 13): display name, username.
NAMES = [
    ("Ada Lovelace", "ada"),
    ("Bram Moolenaar", "bram"),
    ("Chen Wei", "chenwei"),
    ("Dana Scully", "dscully"),
    ("Émile Zola", "emile"),
    ("Fatima Al-Fihri", "fatima"),
    ("Grace Hopper", "grace.h"),
    ("Hiro Protagonist", "hiro"),
    ("Ines Müller", "ines_m"),
    ("Jonas Berg", "jberg"),
    ("Kofi Mensah", "kofi"),
    ("Lena Sokolova", "lena.s"),
]
MODERATOR_NAMES = [("Mod Marta", "marta"), ("Mod Niels", "niels")]

MARKETS = [
    (
        "Will the community reach 10,000 members by the end of the year?",
        ["Yes", "No"],
        "amm",
        "community",
    ),
    (
        "Which map wins the next tournament vote?",
        [
            "Dust",
            "Mirage",
            "Inferno",
            "Nuke",
            "Ancient",
            "Anubis",
            "Vertigo",
            "Overpass",
            "Train",
            "Office",
        ],
        "amm",
        "gaming",
    ),
    (
        "Who takes the monthly chess ladder?",
        ["Alice", "Bob", "Chen", "Dana"],
        "parimutuel",
        "gaming",
    ),
    ("Will it snow in Berlin on New Year's Eve?", ["Yes", "No"], "amm", "weather"),
    ("Which team wins the charity stream?", ["Red", "Blue", "Green"], "parimutuel", "events"),
    ("Does the next patch ship before Friday?", ["Yes", "No", "Delayed a week+"], "amm", "gaming"),
    (
        "Best pizza topping (community poll market)",
        ["Margherita", "Pepperoni", "Hawaiian"],
        "amm",
        "fun",
    ),
]


class Command(BaseCommand):
    help = "Create a demo guild with members and open, closed, resolved and cancelled markets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trades", type=int, default=40, help="Trades per open market.")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: object, trades: int, seed: int, **options: object) -> None:
        rng = random.Random(seed)
        run = f"seed:{seed}:{Market.objects.count()}"
        gs = guild_settings_get_or_create(guild_id=DEMO_GUILD)
        gs.min_resolution_votes = 2
        gs.save()
        for user_id, (display, username) in zip(
            MEMBERS + MODERATORS, NAMES + MODERATOR_NAMES, strict=True
        ):
            member_seen(
                guild_id=DEMO_GUILD,
                user_id=user_id,
                display_name=display,
                username=username,
                guild_name="Demo Guild",
            )
        for member in MEMBERS:
            points_grant(
                guild_id=DEMO_GUILD,
                user_id=member,
                amount=5000,
                reason="Demo allowance",
                actor=SYSTEM,
                idempotency_key=f"{run}:grant:{member}",
            )
        created = []
        for i, (question, outcomes, mechanism, category) in enumerate(MARKETS):
            market = services.market_create(
                guild_id=DEMO_GUILD,
                creator_id=MEMBERS[i % len(MEMBERS)],
                question=question,
                outcomes=outcomes,
                duration=f"{2 + i}d",
                category=category,
                mechanism=mechanism,
                idempotency_key=f"{run}:market:{i}",
            )
            created.append(market)
            for t in range(trades):
                member = rng.choice(MEMBERS)
                outcome = rng.randrange(len(outcomes))
                if mechanism == "amm" and t % 5 == 4:
                    try:
                        betting_services.shares_sell(
                            market_id=market.pk,
                            user_id=member,
                            outcome=outcome,
                            idempotency_key=f"{run}:{i}:{t}",
                        )
                        continue
                    except Exception:  # no shares of that outcome: buy instead
                        pass
                betting_services.bet_place(
                    market_id=market.pk,
                    user_id=member,
                    outcome=outcome,
                    amount=rng.choice([10, 25, 50, 100, 250]),
                    idempotency_key=f"{run}:{i}:{t}:bet",
                )
        # Lifecycle: two closed (one awaiting a second vote), one resolved, one cancelled.
        closing = created[3:7]
        for market in closing:
            services.market_close(
                market_id=market.pk,
                actor=Actor.member(market.creator_id),
                idempotency_key=f"{run}:close:{market.pk}",
            )
        services.resolution_vote_cast(
            market_id=created[3].pk,
            actor=Actor.member(MODERATORS[0], manage_guild=True),
            outcome=0,
            idempotency_key=f"{run}:vote:{created[3].pk}",
        )
        for voter in MODERATORS:
            services.resolution_vote_cast(
                market_id=created[4].pk,
                actor=Actor.member(voter, manage_guild=True),
                outcome=1,
                idempotency_key=f"{run}:vote:{created[4].pk}:{voter}",
            )
        services.market_cancel(
            market_id=created[5].pk,
            actor=Actor.member(MODERATORS[0], manage_guild=True),
            reason="Patch date was announced before the market closed",
            idempotency_key=f"{run}:cancel:{created[5].pk}",
        )
        Market.objects.filter(pk=created[6].pk).update(
            closed_at=timezone.now() - dt.timedelta(hours=30)
        )
        report = ledger_audit()
        self.stdout.write(
            f"Seeded guild {DEMO_GUILD}: {len(MEMBERS)} members, {len(created)} markets "
            f"(ids {created[0].pk}–{created[-1].pk}). {report.summary()}"
        )
