"""`/metrics` (issue 7): restricted to allowed addresses or a bearer token; exposes the business
gauges and counters, which move after a trade; solvency follows the ledger audit; the bot
helpers record what the bot reports."""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest
from django.core.management import call_command
from django.db import OperationalError, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import REGISTRY

from betting import services as betting_services
from core import telemetry
from core.telemetry import Reading
from markets import services
from ops import metrics
from points.db import retry_transient
from points.models import Account
from points.rules import SYSTEM, Actor
from points.services import points_grant
from tests.conftest import ALICE, BOB, GUILD, MOD
from tests.ops.conftest import metric, redis_caches

pytestmark = pytest.mark.django_db(transaction=True)

OUTSIDER = "203.0.113.9"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def create_market(key: str = "ops-m1", **kw):
    return services.market_create(
        guild_id=GUILD,
        creator_id=ALICE,
        question="Will the deploy go smoothly?",
        outcomes=["Yes", "No"],
        duration=kw.pop("duration", "1d"),
        idempotency_key=key,
        **kw,
    )


# --- Access ------------------------------------------------------------------------------------


def test_metrics_refused_from_a_client_not_in_the_allow_list(client):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDER)
    assert response.status_code == 403
    assert b"METRICS_ALLOWED_IPS" in response.content
    assert b"pm_" not in response.content


def test_metrics_served_to_the_allow_list_including_cidr_blocks(client, settings):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="11.0.0.1").status_code == 403
    assert client.get("/metrics").status_code == 403


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(client):
    # Through the local proxy, the client is the address the proxy appended (right-most).
    via_proxy = client.get("/metrics", HTTP_X_FORWARDED_FOR=f"127.0.0.1, {OUTSIDER}")
    assert via_proxy.status_code == 403
    # A client talking to us directly cannot claim to be localhost.
    spoofed = client.get("/metrics", REMOTE_ADDR=OUTSIDER, HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert spoofed.status_code == 403


def test_bearer_token_opens_metrics_from_anywhere(client, settings):
    settings.METRICS_TOKEN = "prometheus-scrape-token-1234"
    ok = client.get(
        "/metrics", REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer prometheus-scrape-token-1234"
    )
    assert ok.status_code == 200
    assert ok["Content-Type"].startswith("text/plain; version=")
    wrong = client.get("/metrics", REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403


def test_empty_token_setting_never_matches(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


# --- Business metrics ----------------------------------------------------------------------------


def test_metrics_expose_business_gauges_and_move_after_a_trade(client, scrape):
    market = create_market()
    before = scrape()
    assert metric(before, "pm_markets_open", mechanism="amm") == 1
    assert metric(before, "pm_markets_open", mechanism="parimutuel") == 0
    assert metric(before, "pm_points_in_escrow") == 1000  # the market maker's liquidity
    assert metric(before, "pm_points_in_circulation") == 1000
    assert metric(before, "pm_dependency_up", dependency="database") == 1

    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=100, idempotency_key="discord:ops-1"
    )
    after = scrape()
    for name, labels, delta in [
        ("pm_trades_total", {"mechanism": "amm", "kind": "buy"}, 1),
        ("pm_points_traded_total", {"mechanism": "amm"}, 100),
    ]:
        assert metric(after, name, **labels) - metric(before, name, **labels) == delta, name
    assert metric(after, "pm_points_in_escrow") == 1100
    # BOB's starting balance was issued by the treasury; his stake only moved it to escrow.
    assert metric(after, "pm_points_in_circulation") == 2000
    assert metric(after, "pm_ledger_solvent") == 1
    # django-prometheus' own request metrics are in the same exposition.
    assert metric(after, "django_http_requests_total_by_method_total", method="GET") >= 1


def test_market_transitions_are_counted(scrape):
    created = sample("pm_markets_total", event="created", mechanism="parimutuel")
    cancelled = sample("pm_markets_total", event="cancelled", mechanism="parimutuel")
    market = create_market(key="ops-pool", mechanism="parimutuel")
    services.market_cancel(
        market_id=market.pk,
        reason="duplicate",
        idempotency_key="admin:ops-c",
        actor=Actor.member(MOD, manage_guild=True),
    )
    after = scrape()
    assert metric(after, "pm_markets_total", event="created", mechanism="parimutuel") == created + 1
    assert (
        metric(after, "pm_markets_total", event="cancelled", mechanism="parimutuel")
        == cancelled + 1
    )
    assert metric(after, "pm_markets_open", mechanism="parimutuel") == 0


def test_points_in_circulation_follow_ledger_grants(scrape):
    points_grant(
        guild_id=GUILD,
        user_id=BOB,
        amount=250,
        reason="event prize",
        idempotency_key="g1",
        actor=SYSTEM,
    )
    assert metric(scrape(), "pm_points_in_circulation") == 1000 + 250


def test_stale_pending_resolutions_are_counted(scrape):
    long_ago = timezone.now() - dt.timedelta(days=3)
    create_market(key="ops-old", duration="1h", now=long_ago)
    create_market(key="ops-new", duration="1h")
    report = services.markets_tick(now=long_ago + dt.timedelta(hours=2))
    assert len(report.closed) == 1
    samples = scrape()
    assert metric(samples, "pm_markets_pending_resolution_stale") == 1
    assert metric(samples, "pm_markets_open", mechanism="amm") == 1


def test_solvency_follows_the_ledger_audit():
    create_market()
    points_grant(
        guild_id=GUILD, user_id=ALICE, amount=5, reason="prize", idempotency_key="g2", actor=SYSTEM
    )
    snapshot = metrics.metrics_refresh(audit=True)
    assert snapshot.solvent is True and sample("pm_ledger_solvent") == 1
    assert time.time() - sample("pm_ledger_audit_timestamp_seconds") < 60

    wallet = Account.objects.get(kind="wallet", owner_id=ALICE)
    with pytest.raises(RuntimeError), transaction.atomic():
        # A balance that no transfer explains breaks L1 and L2; rolled back afterwards.
        Account.objects.filter(pk=wallet.pk).update(balance=F("balance") + 7)
        broken = metrics.metrics_refresh(audit=True)
        raise RuntimeError("roll back the corruption")
    assert broken.solvent is False and broken.audit_violations == 2
    assert sample("pm_ledger_audit_violations") == 2
    # Other processes read the verdict from the cache until the next audit.
    assert metrics.metrics_refresh(audit=None).solvent is False

    assert metrics.metrics_refresh(audit=True).solvent is True
    assert sample("pm_ledger_solvent") == 1


def test_scheduler_refresh_audits_at_most_once_per_interval(settings):
    settings.METRICS_AUDIT_INTERVAL = 3600
    first = metrics.metrics_refresh(audit=True).audit_at
    again = metrics.metrics_refresh().audit_at  # what run_scheduler calls after each tick
    assert again == first
    settings.METRICS_AUDIT_INTERVAL = 0
    assert metrics.metrics_refresh().audit_at > first


@pytest.fixture
def gauge_source():
    """Register gauge sources for one test, the way an app does in its `ready()`."""
    names: list[str] = []

    def register(name, source):
        names.append(name)
        telemetry.gauges_register(name, source)

    yield register
    for name in names:
        telemetry.gauges_unregister(name)
        metrics.BUSINESS_GAUGES.update(name, [])


def test_scrape_answers_within_its_deadline_when_the_database_hangs(client, settings, gauge_source):
    settings.METRICS_SCRAPE_TIMEOUT = 0.3

    def hung():
        time.sleep(3)
        return []

    gauge_source("hung", hung)
    started = time.perf_counter()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert time.perf_counter() - started < 1.5
    assert sample("pm_dependency_up", dependency="database") == 0


def test_a_registered_gauge_source_is_exposed_and_keeps_its_last_value_when_it_fails(
    scrape, gauge_source
):
    state = {"value": 7, "fail": False}

    def source():
        if state["fail"]:
            raise RuntimeError("source broke")
        return [Reading("pm_test_widgets", "Widgets", state["value"], {"colour": "blue"})]

    gauge_source("widgets", source)
    assert metric(scrape(), "pm_test_widgets", colour="blue") == 7
    state.update(value=9, fail=True)
    samples = scrape()
    assert metric(samples, "pm_test_widgets", colour="blue") == 7
    # The other sources still refreshed.
    assert metric(samples, "pm_markets_open", mechanism="amm") == 0


def test_the_trade_counter_has_no_guild_label(scrape):
    market = create_market(key="ops-labels")
    betting_services.bet_place(
        market_id=market.pk, user_id=BOB, outcome=0, amount=10, idempotency_key="discord:ops-l"
    )
    names = {frozenset(dict(labels)) for (name, labels) in scrape() if name == "pm_trades_total"}
    assert names == {frozenset({"mechanism", "kind"})}


# --- Bot helpers -------------------------------------------------------------------------------


def test_interaction_observed_counts_outcomes_latency_and_missed_deadlines():
    base_ok = sample("pm_bot_interactions_total", command="bet", outcome="ok")
    base_err = sample("pm_bot_interactions_total", command="bet", outcome="error")
    base_missed = sample("pm_bot_interactions_missed_3s_total", command="bet")
    base_fast = sample("pm_bot_interaction_first_response_seconds_bucket", command="bet", le="0.5")
    base_count = sample("pm_bot_interaction_completion_seconds_count", command="bet")

    metrics.interaction_observed("bet", "ok", 0.4, 1.2)
    metrics.interaction_observed("bet", "ok", 3.4, 4.0)  # answered after Discord gave up
    metrics.interaction_observed("bet", "weird", None, None)  # never answered

    assert sample("pm_bot_interactions_total", command="bet", outcome="ok") == base_ok + 2
    assert sample("pm_bot_interactions_total", command="bet", outcome="error") == base_err + 1
    assert sample("pm_bot_interactions_missed_3s_total", command="bet") == base_missed + 2
    assert (
        sample("pm_bot_interaction_first_response_seconds_bucket", command="bet", le="0.5")
        == base_fast + 1
    )
    assert sample("pm_bot_interaction_completion_seconds_count", command="bet") == base_count + 2


def test_bot_gauges_and_refusals():
    base = sample("pm_bot_ratelimit_refusals_total", scope="user_trades")
    metrics.ratelimit_refused("user_trades")
    assert sample("pm_bot_ratelimit_refusals_total", scope="user_trades") == base + 1

    metrics.notification_backlog_set(17)
    assert sample("pm_bot_notification_backlog") == 17
    metrics.gateway_observed(0.042, 2)
    assert sample("pm_bot_gateway_latency_seconds") == pytest.approx(0.042)
    assert sample("pm_bot_shards_connected") == 2
    metrics.gateway_observed(math.inf, 0)  # before the first heartbeat: latency unknown
    assert sample("pm_bot_gateway_latency_seconds") == pytest.approx(0.042)
    assert sample("pm_bot_shards_connected") == 0


def test_metric_helpers_never_raise():
    metrics.trade_recorded(mechanism="amm", kind="buy", amount=-5)  # inc(<0)
    metrics.notification_backlog_set("many")  # type: ignore[arg-type]


def test_scrape_reports_the_dependencies(scrape, settings, closed_port):
    samples = scrape()
    for dependency in ("database", "migrations", "cache"):
        assert metric(samples, "pm_dependency_up", dependency=dependency) == 1, dependency
    settings.CACHES = redis_caches(f"redis://127.0.0.1:{closed_port}/0")
    samples = scrape()
    assert metric(samples, "pm_dependency_up", dependency="cache") == 0
    assert metric(samples, "pm_dependency_up", dependency="database") == 1


def test_scheduler_tick_refreshes_the_business_gauges_without_a_scrape():
    create_market(key="ops-tick")
    metrics.BUSINESS_GAUGES.update("markets", [])  # forget what earlier tests read
    assert sample("pm_markets_open", mechanism="amm") == 0
    call_command("run_scheduler", once=True)
    assert sample("pm_markets_open", mechanism="amm") == 1


class SerializationFailure(Exception):
    sqlstate = "40001"


def test_transient_database_retries_are_counted_by_operation_and_sqlstate():
    attempts = []

    @retry_transient(attempts=3, base_delay=0, max_delay=0)
    def use_case() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("could not serialize access") from SerializationFailure()
        return "done"

    labels = {"operation": use_case.__qualname__, "sqlstate": "40001"}
    before = sample("pm_db_retries_total", **labels)
    assert use_case() == "done"
    assert sample("pm_db_retries_total", **labels) == before + 1
