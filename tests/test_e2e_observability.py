"""The operations surface end to end: a real Prometheus scrapes a LIVE run against the
simulator, and /healthz turns 503 when every series of an exchange goes stale.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e_support import Collector, e2e_config, free_port, poll

SERIES = [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]}]
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="the Prometheus server and promtool are not installed (Debian package prometheus; .ci/run installs it)")


class Prometheus:
    """The Prometheus server binary scraping one target every second, on 127.0.0.1."""

    def __init__(self, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "tda-collector", "scrape_interval": "1s", "scrape_timeout": "1s",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}]}))
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict] | None:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = json.loads(answer.read())
        except OSError:
            return None  # not listening yet
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@needs_prometheus
def test_prometheus_scrapes_the_per_series_lag_of_a_live_run(tmp_path, sim, collectors) -> None:
    sim.add_fault("binance", "http_429", count=1, endpoint="klines")
    collector = Collector(e2e_config(tmp_path, sim, {"binance": SERIES}))
    collectors.append(collector)
    collector.wait_healthy(timeout=30)
    prometheus = Prometheus(tmp_path, collector.health_port)
    try:
        scraped = poll(lambda: prometheus.query('count_over_time(up{job="tda-collector"}[1m]) >= 2'), 30,
                       "two scrapes of the collector")
        assert scraped
        lag = poll(lambda: (r := prometheus.query('tda_series_lag_seconds{exchange="binance"}')) and len(r) == 2
                   and r, 20, "the lag of both series in Prometheus")
        by_timeframe = {r["metric"]["timeframe"]: float(r["value"][1]) for r in lag}
        assert set(by_timeframe) == {"1m", "5m"}
        assert all(r["metric"]["symbol"] == "BTC/USDT" and r["metric"]["dataset"] == "ohlcv" for r in lag)
        # LIVE keeps up: the newest closed bar is stored within a cycle or two of closing.
        assert by_timeframe["1m"] <= 60 and by_timeframe["5m"] <= 300, by_timeframe
        throttled = prometheus.query('tda_exchange_throttled_total{exchange="binance",status="429"}')
        assert throttled and float(throttled[0]["value"][1]) >= 1, throttled
        ok = prometheus.query('tda_exchange_requests_total{exchange="binance",outcome="ok"}')
        assert ok and float(ok[0]["value"][1]) > 0
    finally:
        prometheus.stop()
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.health_port}/metrics", timeout=5) as answer:
        page = answer.read()
    check = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, timeout=30)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check
    assert collector.terminate() == 0


def test_healthz_turns_503_when_every_series_of_an_exchange_goes_stale(tmp_path, sim, collectors) -> None:
    config = e2e_config(tmp_path, sim, {"binance": SERIES, "okx": SERIES},
                        settings={"stale_after_intervals": 3, "heartbeat_timeout_intervals": 60})
    collector = Collector(config)
    collectors.append(collector)
    healthy = collector.wait_healthy(timeout=30)
    assert healthy["stale_series"] == []
    assert {s["timeframe"] for s in healthy["workers"]["okx"]["series"]} == {"1m", "5m"}
    assert all(s["last_success"] for s in healthy["workers"]["okx"]["series"])

    sim.add_fault("okx", "http_503", duration=60)
    status, body = collector.wait_for(lambda: (a := collector.health()) and a[0] == 503 and a, 20,
                                      "503 once every okx series is stale")
    assert body["workers"]["okx"]["all_series_stale"] and not body["workers"]["binance"]["all_series_stale"]
    assert {(s["exchange"], s["timeframe"]) for s in body["stale_series"]} == {("okx", "1m"), ("okx", "5m")}
    assert all(s["last_success"] for s in body["stale_series"])  # when they were last stored

    sim.clear_faults("okx")
    started = time.monotonic()
    collector.wait_for(lambda: (a := collector.health()) and a[0] == 200, 40, "healthy again")
    assert time.monotonic() - started < 40
    assert collector.terminate() == 0
