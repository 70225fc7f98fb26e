"""The monitoring config names only metrics that cartpulse exports, and links real runbooks.

Every metric catalogue is built on a fresh registry; the exported sample names (``_total`` of
counters, ``_bucket``/``_sum``/``_count`` of histograms) are derived from the metric families,
so labelled metrics without children count too. Every ``cartpulse_*`` name in an alert
expression or a dashboard query must be one of them, and docs/metrics.md must list them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Metric

from senders.runtime.metrics import CouponMetrics
from senders.runtime.metrics import Metrics as SenderMetrics
from senders.webhooks.metrics import WebhookMetrics
from streams.collector.metrics import CollectorMetrics
from streams.runtime.metrics import (
    CatalogueMetrics,
    DetectorMetrics,
    ErasureMetrics,
    JourneyMetrics,
)
from tests.conftest import ROOT
from tests.support.ops import ALERTS, DASHBOARD, METRIC_NAME, load_yaml

ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"

JOB_MATCHER = re.compile(r'job="([^"]+)"')
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
CATALOGUES: dict[str, Callable[[CollectorRegistry], object]] = {
    "detector": DetectorMetrics.create,
    "journeys": JourneyMetrics.create,
    "catalogue": CatalogueMetrics.create,
    "erasure": ErasureMetrics.create,
    "senders": SenderMetrics.create,
    "coupons": CouponMetrics.create,
    "webhooks": WebhookMetrics.create,
    "collector": CollectorMetrics.create,
}


def metric_families() -> list[Metric]:
    """Every catalogue's metric families, each catalogue built on its own fresh registry."""
    families: list[Metric] = []
    for create in CATALOGUES.values():
        registry = CollectorRegistry()
        create(registry)
        families += registry.collect()
    return families


def catalogue_families() -> dict[str, str]:
    """Family name -> type, over every catalogue."""
    return {family.name: family.type for family in metric_families()}


def exported_names() -> set[str]:
    """Every sample name a scrape can show, with or without children behind the labels."""
    names: set[str] = set()
    for family in metric_families():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in dashboard_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page (outside code blocks)."""
    anchors: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            text = re.sub(r"[^\w\- ]", "", heading.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_the_catalogues_export_the_expected_forms() -> None:
    names = exported_names()

    # A counter is scraped as _total, a histogram as _bucket/_sum/_count, a gauge as is.
    assert "cartpulse_detector_events_total" in names
    assert "cartpulse_send_outcomes_total" in names
    assert {"_bucket", "_sum", "_count"} <= {
        name.removeprefix("cartpulse_send_limiter_wait_seconds")
        for name in names
        if name.startswith("cartpulse_send_limiter_wait_seconds")
    }
    assert "cartpulse_detector_watermark_lag_seconds" in names
    assert "cartpulse_send_outcomes" not in names


@pytest.mark.parametrize(
    ("source", "exprs"),
    [
        ("alerts.yml", lambda: [rule["expr"] for rule in alert_rules()]),
        ("cartpulse.json", dashboard_exprs),
    ],
)
def test_every_metric_in_the_monitoring_config_is_exported(
    source: str, exprs: Callable[[], list[str]]
) -> None:
    referenced = {name for expr in exprs() for name in METRIC_NAME.findall(expr)}

    assert len(referenced) >= 10, f"{source}: the metric-name regex found almost nothing"
    assert referenced - exported_names() == set(), f"{source} names metrics nobody exports"


def test_the_dashboard_shows_every_catalogue() -> None:
    referenced = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    shown_families = {
        family
        for family, kind in catalogue_families().items()
        if any(family + suffix in referenced for suffix in SUFFIXES[kind])
    }

    assert set(catalogue_families()) - shown_families == set()


def test_alerts_are_labelled_annotated_and_linked_to_their_runbook() -> None:
    rules = alert_rules()
    anchors = github_anchors(OPERATIONS.read_text(encoding="utf-8"))
    names = [rule["alert"] for rule in rules]

    assert len(names) >= 10, "alerts.yml: the rules were not found"
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert "for" in rule, f"{rule['alert']}: say how long the condition must hold"
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section for {rule['alert']}"


def test_alerts_select_jobs_that_prometheus_scrapes() -> None:
    config = load_yaml(SCRAPE_CONFIG)
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    selected = {job for rule in alert_rules() for job in JOB_MATCHER.findall(rule["expr"])}

    assert config["rule_files"] == ["alerts.yml"]
    assert selected, "the alerts select no job"
    assert selected - jobs == set()


def test_the_alert_unit_tests_cover_several_alerts() -> None:
    document = load_yaml(ALERT_TESTS)
    tested = {case["alertname"] for test in document["tests"] for case in test["alert_rule_test"]}

    assert document["rule_files"] == ["alerts.yml"]
    assert len(tested) >= 3
    assert tested <= {rule["alert"] for rule in alert_rules()}


def test_the_dashboard_is_provisioned_with_its_datasource() -> None:
    board = dashboard()
    panels = list(dashboard_panels(board["panels"]))
    datasources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    providers = load_yaml(PROVISIONING / "dashboards" / "cartpulse.yml")
    variable = next(v for v in board["templating"]["list"] if v["type"] == "datasource")

    assert board["uid"] == "cartpulse"
    assert sum(panel["type"] != "row" for panel in panels) >= 10, "the dashboard has no panels"
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids must be unique"
    assert variable["current"]["value"] == datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_the_metrics_doc_lists_every_metric() -> None:
    documented = set(METRIC_NAME.findall(METRICS_DOC.read_text(encoding="utf-8")))
    scraped_as = {
        family + ("_total" if kind == "counter" else "")
        for family, kind in catalogue_families().items()
    }

    histograms = {family for family, kind in catalogue_families().items() if kind == "histogram"}

    assert scraped_as - documented == set(), "docs/metrics.md misses these metrics"
    assert documented - exported_names() - histograms == set(), "docs/metrics.md: unknown names"
