"""deploy/: the alert rules (promtool), the Grafana dashboard and the docker-compose stack.

Grafana cannot run here: the dashboard is checked for the structure Grafana provisions, and
every query in it, and in the alert rules, must name a metric that a real /metrics page of a
LIVE run has.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e_support import ROOT, Collector, e2e_config

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (Debian package prometheus; .ci/run installs it)")
METRIC = re.compile(r"\b(tda_[a-z0-9_]+|up)\b")
PROMQL_FUNCTIONS = {"up"}  # `up` is Prometheus' own per-target metric, not the collector's


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def page_metric_names(page: str) -> set[str]:
    """Every sample name the page can carry: TYPE lines, histograms with their series."""
    names = set()
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    run = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=ALERTS.parent,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


@needs_promtool
def test_the_stack_prometheus_config_is_valid() -> None:
    check = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=ALERTS.parent,
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_alerts_cover_what_an_operator_must_hear_about() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {"TdaWorkerDown", "TdaSeriesStale", "TdaExchangeThrottling", "TdaSpoolGrowing",
            "TdaHistorySeriesFailed"} <= names
    assert all(rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
               for rule in alert_rules())


def test_the_dashboard_has_the_structure_grafana_provisions() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in ("timeseries", "stat") and panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(target["expr"] for target in panel["targets"])
    titles = " | ".join(panel["title"].lower() for panel in board["panels"])
    for subject in ("ingest rate", "lag per series", "errors", "restarts", "memory", "spool", "loki"):
        assert subject in titles, subject
    variable = board["templating"]["list"][0]
    assert variable["name"] == "exchange" and all("$exchange" in q for q in dashboard_queries() if "exchange" in q
                                                  and "tda_loki" not in q and "tda_build" not in q)


def test_the_provisioning_and_compose_files_point_at_each_other() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {"collector", "prometheus", "loki", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
    grafana_mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tda.yml").read_text())["providers"][0]
    assert Path(grafana_mounts["./grafana/dashboard.json"]).parent == Path(provider["options"]["path"])
    sources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/datasources.yml").read_text())
    assert {s["uid"] for s in sources["datasources"]} >= {"prometheus"}
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["collector:8080"]
    assert compose["services"]["collector"]["environment"]["LOKI_URL"].startswith("http://loki:3100/")


def test_every_dashboard_and_alert_query_names_a_metric_of_a_real_metrics_page(tmp_path, sim, collectors) -> None:
    collector = Collector(e2e_config(tmp_path, sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]}))
    collectors.append(collector)
    collector.wait_healthy(timeout=30)
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.health_port}/metrics", timeout=5) as answer:
        exported = page_metric_names(answer.read().decode())
    assert collector.terminate() == 0
    queries = {"dashboard": dashboard_queries(), "alerts": [rule["expr"] for rule in alert_rules()]}
    for source, exprs in queries.items():
        named = {name for expr in exprs for name in METRIC.findall(expr)} - PROMQL_FUNCTIONS
        assert named, source
        assert named <= exported, (source, sorted(named - exported))
