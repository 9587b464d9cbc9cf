"""/metrics: prometheus_client exposition of what the workers report, with an injected clock."""

from __future__ import annotations

import queue
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import AppConfig
from core.protocol import Envelope, Heartbeat, SeriesDone, SeriesStatus
from core.telemetry import LATENCY_BUCKETS, HistoryProgress, RequestStats, SeriesFreshness
from supervisor.arbiter import Arbiter
from supervisor.metrics import CollectorMetrics, newest_closed_bar_ms
from tests.test_supervisor_decisions import FakeContext, FakeProcess

NOW = 1_700_000_130.0            # 2023-11-14T22:15:30Z
MINUTE, HOUR = 60_000, 3_600_000

# Today's names (a counter gained ``_total``) and the new ones.
EXPECTED_NAMES = {
    "tda_worker_up", "tda_worker_restarts_total", "tda_rows_written_total", "tda_rows_rejected_total",
    "tda_worker_rss_bytes", "tda_worker_uss_bytes", "tda_worker_last_success_timestamp_seconds",
    "tda_loki_sent_total", "tda_loki_dropped_total", "tda_loki_failed_batches_total", "tda_loki_retries_total",
    "tda_loki_pending", "tda_series_last_success_timestamp_seconds", "tda_series_lag_seconds",
    "tda_exchange_requests_total", "tda_exchange_throttled_total", "tda_exchange_request_duration_seconds_bucket",
    "tda_exchange_request_duration_seconds_sum", "tda_exchange_request_duration_seconds_count",
    "tda_spool_rows", "tda_stale_series", "tda_build_info",
}


def make_arbiter(mode: str = "live") -> tuple[Arbiter, dict]:
    FakeProcess.started = []
    clock = {"now": NOW}
    config = AppConfig.model_validate({
        "settings": {"update_interval_seconds": 10},
        "exchanges": {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "1h"]}]}})
    arbiter = Arbiter(config, mode=mode, exchanges=["binance"], ctx=FakeContext, log_queue=queue.Queue(),
                      clock=lambda: clock["now"], start_ms=0 if mode == "history" else None,
                      end_ms=HOUR if mode == "history" else None)
    for worker in arbiter.workers.values():
        arbiter.spawn_worker(worker)
    return arbiter, clock


def send(arbiter: Arbiter, message, at: float = NOW) -> None:
    worker = arbiter.workers["binance"]
    worker.on_message(Envelope("binance", worker.pid, at, message), at)


def samples(page: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(page.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def render(arbiter: Arbiter, clock: dict, **kwargs) -> bytes:
    return CollectorMetrics(lambda: arbiter.workers.values(), clock=lambda: clock["now"],
                            loki_stats=lambda: {"sent": 5, "dropped": 2, "failed_batches": 1, "retries": 3,
                                                "pending": 7}, **kwargs).render()


def series_labels(timeframe: str) -> tuple:
    return tuple(sorted({"exchange": "binance", "symbol": "BTC/USDT", "timeframe": timeframe,
                         "dataset": "ohlcv"}.items()))


def test_newest_closed_bar_is_the_one_before_the_open_bar() -> None:
    now_ms = int(NOW * 1000)
    assert newest_closed_bar_ms(now_ms, "1m") == now_ms // MINUTE * MINUTE - MINUTE
    assert newest_closed_bar_ms(now_ms, "1h") == now_ms // HOUR * HOUR - HOUR


def test_the_page_keeps_todays_names_and_adds_series_requests_spool_and_build_info() -> None:
    arbiter, clock = make_arbiter()
    latency = [0] * (len(LATENCY_BUCKETS) + 1)
    latency[0], latency[3], latency[-1] = 4, 1, 1     # <= 25 ms, <= 250 ms, > 10 s
    send(arbiter, Heartbeat(10, 1, NOW - 5, requests=RequestStats(
        {"ok": 5, "rate_limited": 1}, {"429": 1}, tuple(latency), 12.5), spool_rows=42))
    minute_bar = int(NOW * 1000) // MINUTE * MINUTE - MINUTE
    send(arbiter, SeriesFreshness([("BTC/USDT", "1m", "ohlcv", NOW - 5, minute_bar - 2 * MINUTE),
                                   ("BTC/USDT", "1h", "ohlcv", NOW - 5, None)]))
    page = render(arbiter, clock, stale_after_s=30)
    values = samples(page)
    assert EXPECTED_NAMES <= {name for name, _ in values}
    ex = (("exchange", "binance"),)
    assert values[("tda_rows_written_total", ex)] == 10 and values[("tda_spool_rows", ex)] == 42
    assert values[("tda_series_lag_seconds", series_labels("1m"))] == 120.0
    assert ("tda_series_lag_seconds", series_labels("1h")) not in values   # no bar known yet
    assert values[("tda_series_last_success_timestamp_seconds", series_labels("1h"))] == NOW - 5
    assert values[("tda_exchange_requests_total", (("exchange", "binance"), ("outcome", "rate_limited")))] == 1
    assert values[("tda_exchange_throttled_total", (("exchange", "binance"), ("status", "429")))] == 1
    assert values[("tda_exchange_throttled_total", (("exchange", "binance"), ("status", "418")))] == 0
    assert values[("tda_exchange_request_duration_seconds_bucket", (("exchange", "binance"), ("le", "0.25")))] == 5
    assert values[("tda_exchange_request_duration_seconds_count", ex)] == 6
    assert values[("tda_loki_dropped_total", ())] == 2 and values[("tda_loki_pending", ())] == 7


def test_lag_grows_while_nothing_new_is_stored() -> None:
    arbiter, clock = make_arbiter()
    minute_bar = int(NOW * 1000) // MINUTE * MINUTE - MINUTE
    send(arbiter, SeriesFreshness([("BTC/USDT", "1m", "ohlcv", NOW, minute_bar)]))
    assert samples(render(arbiter, clock))[("tda_series_lag_seconds", series_labels("1m"))] == 0
    clock["now"] += 5 * 60
    assert samples(render(arbiter, clock))[("tda_series_lag_seconds", series_labels("1m"))] == 300


def test_request_counters_survive_a_worker_restart() -> None:
    arbiter, _ = make_arbiter()
    send(arbiter, Heartbeat(requests=RequestStats({"ok": 7})))
    worker = arbiter.workers["binance"]
    worker.process.exitcode = -9
    arbiter.reap_workers()
    arbiter.spawn_worker(worker)
    send(arbiter, Heartbeat(requests=RequestStats({"ok": 2})))
    assert worker.telemetry.requests.outcomes == {"ok": 9}


def test_history_progress_ratio_eta_and_ended_series() -> None:
    arbiter, clock = make_arbiter("history")
    send(arbiter, Heartbeat(history=HistoryProgress(120, 20, 2, 0)), at=NOW)
    send(arbiter, Heartbeat(history=HistoryProgress(120, 60, 2, 1)), at=NOW + 10)
    send(arbiter, SeriesDone(("binance", "BTC/USDT", "1h"), SeriesStatus.FAILED, 0, error="boom"), at=NOW + 10)
    values = samples(render(arbiter, clock))
    ex = (("exchange", "binance"),)
    assert values[("tda_history_progress_ratio", ex)] == 0.5
    assert values[("tda_history_eta_seconds", ex)] == 15.0          # 40 bars / 10 s, 60 left
    assert values[("tda_history_series", (("exchange", "binance"), ("status", "failed")))] == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_page_without_lint_problems() -> None:
    arbiter, clock = make_arbiter()
    send(arbiter, Heartbeat(3, 0, NOW, requests=RequestStats({"ok": 1})))
    send(arbiter, SeriesFreshness([("BTC/USDT", "1m", "ohlcv", NOW, int(NOW * 1000) // MINUTE * MINUTE)]))
    check = subprocess.run(["promtool", "check", "metrics"], input=render(arbiter, clock, stale_after_s=30),
                           capture_output=True, timeout=30)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
