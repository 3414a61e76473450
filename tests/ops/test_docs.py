"""The operations docs stay true to the code: every metric the Grafana dashboard and the alert
rules query is one this project exports, the alert rules cover the issue's conditions, and the
deploy guide documents every environment variable the settings read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

DOCS = Path(settings.BASE_DIR) / "docs"
# Our series; node_exporter's `node_*` and Prometheus' `up` come from elsewhere.
METRIC_RE = re.compile(r"\b((?:pm|django|process)_[a-z0-9_]+)")


@pytest.fixture
def exported_names(client) -> set[str]:
    # django-prometheus registers its request metrics lazily, and the business gauges exist once
    # a scrape has read them.
    client.get("/metrics")
    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_count", "_sum"],
            "gauge": [""],
            "summary": ["_count", "_sum", ""],
        }.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_exprs() -> str:
    return (DOCS / "alerts.yml").read_text()


@pytest.mark.django_db
def test_dashboard_and_alerts_query_only_exported_metrics(exported_names):
    referenced = set()
    for text in [*dashboard_exprs(), alert_exprs()]:
        referenced.update(METRIC_RE.findall(text))
    unknown = sorted(name for name in referenced if name not in exported_names)
    assert not unknown, f"not exported by this project: {unknown}"
    for needed in ("pm_ledger_solvent", "pm_trades_total", "pm_bot_interactions_total"):
        assert needed in referenced


def test_dashboard_is_importable_grafana_json():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"


def test_alert_rules_cover_the_operating_conditions():
    text = alert_exprs()
    for alert in (
        "PMHighErrorRate",  # error rate > 1 %
        "PMHighLatencyP99",  # p99 > 1 s
        "PMDatabaseDown",
        "PMCacheMissRateHigh",  # > 50 %
        "PMHostMemoryHigh",  # > 80 %
        "PMLedgerInsolvent",  # solvency ≠ 1
    ):
        assert f"alert: {alert}\n" in text, alert
    assert "> 0.01" in text and "> 0.5" in text and "> 0.8" in text
    assert "min(pm_ledger_solvent) != 1" in text
    alertmanager = (DOCS / "alertmanager.example.yml").read_text()
    assert "discord_configs:" in alertmanager and "email_configs:" in alertmanager


def test_deploy_guide_documents_every_environment_variable():
    source = (Path(settings.BASE_DIR) / "config" / "settings.py").read_text()
    variables = set(re.findall(r'env\.[a-z]+\(\s*"([A-Z][A-Z0-9_]+)"', source))
    guide = (DOCS / "deploy.md").read_text()
    missing = sorted(v for v in variables if f"`{v}`" not in guide)
    assert not missing, f"docs/deploy.md does not mention {missing}"
