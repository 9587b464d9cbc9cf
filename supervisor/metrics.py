"""``GET /metrics``: the supervisor's state as Prometheus metric families, built per scrape.

A custom collector, not a registry of live metric objects: the state already lives in the
worker handles (what the workers last reported), so each scrape reads it once and yields
families. Nothing is kept per series between scrapes, and a series that left the config
leaves the page with it. 3,000 series render in a few tens of milliseconds (see
``python -m bench.run --only metrics``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from core.protocol import Mode, SeriesStatus, WorkerState
from core.telemetry import LATENCY_BUCKETS, OUTCOMES, THROTTLE_STATUSES
from core.timeframes import bar_start
from supervisor.freshness import series_freshness
from supervisor.workers import WorkerHandle

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
SERIES_LABELS = ["exchange", "symbol", "timeframe", "dataset"]
LOKI_COUNTERS = {"sent": "Log records shipped to Loki",
                 "dropped": "Log records dropped: Loki buffer overflow, rejected or abandoned batches",
                 "failed_batches": "Loki batches given up after their retries",
                 "retries": "Loki push retries"}


def build_version() -> str:
    try:
        return metadata.version("tda-large-collector")
    except metadata.PackageNotFoundError:  # running from a checkout
        import tomllib
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "unknown"


def newest_closed_bar_ms(now_ms: int, timeframe: str) -> int:
    """Open time of the newest bar that has closed by ``now_ms``: what the exchange should have."""
    return bar_start(bar_start(now_ms, timeframe) - 1, timeframe)


class CollectorMetrics:
    """A prometheus_client collector over the supervisor's workers."""

    def __init__(self, workers: Callable[[], Iterable[WorkerHandle]], *,
                 loki_stats: Callable[[], dict[str, float]] = dict,
                 stale_after_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._workers = workers
        self._loki_stats = loki_stats
        self._stale_after_s = stale_after_s   # LIVE only: when a series counts as stale
        self._clock = clock
        self._build = {"version": build_version(), "python": platform.python_version()}

    def render(self) -> bytes:
        return generate_latest(self)  # type: ignore[arg-type]  (any object with collect())

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        workers = list(self._workers())
        yield InfoMetricFamily("tda_build", "Version of the collector and of Python", value=self._build)
        yield from self._worker_families(workers, now)
        yield from self._request_families(workers)
        yield from self._series_families(workers, now)
        yield from self._history_families(workers)
        yield from self._loki_families()

    # -- families ----------------------------------------------------------------------------

    def _worker_families(self, workers: list[WorkerHandle], now: float) -> Iterator[Metric]:
        def per_worker(family: Any, value: Callable[[WorkerHandle], float | None]) -> Any:
            for w in workers:
                v = value(w)
                if v is not None:
                    family.add_metric([w.exchange_id], v)
            return family

        labels = ["exchange"]
        yield per_worker(GaugeMetricFamily("tda_worker_up", "1 when the worker process is alive", labels=labels),
                         lambda w: 1.0 if w.is_alive() else 0.0)
        yield per_worker(CounterMetricFamily("tda_worker_restarts", "Worker restarts since the supervisor started",
                                             labels=labels), lambda w: w.restarts)
        yield per_worker(CounterMetricFamily("tda_rows_written", "Rows written to the store", labels=labels),
                         lambda w: w.rows_written)
        yield per_worker(CounterMetricFamily("tda_rows_rejected", "Candles or rows rejected as invalid",
                                             labels=labels), lambda w: w.rows_rejected)
        yield per_worker(GaugeMetricFamily("tda_worker_rss_bytes", "Resident set size of the worker process",
                                           labels=labels), lambda w: w.rss_bytes)
        yield per_worker(GaugeMetricFamily("tda_worker_uss_bytes", "Unique set size of the worker process",
                                           labels=labels), lambda w: w.uss_bytes)
        yield per_worker(GaugeMetricFamily("tda_worker_last_success_timestamp_seconds",
                                           "When a cycle of the worker last stored data (Unix time)",
                                           labels=labels), lambda w: w.last_success)
        yield per_worker(GaugeMetricFamily("tda_spool_rows", "LIVE rows waiting on disk for the store",
                                           labels=labels), lambda w: w.telemetry.spool_rows)
        yield per_worker(GaugeMetricFamily("tda_rate_budget_ratio",
                                           "LIVE request time the series need per interval at the exchange's "
                                           "pace, over the interval (above 1: they do not fit)",
                                           labels=labels), lambda w: w.rate_budget_ratio)
        if self._stale_after_s is not None:
            stale_after_s = self._stale_after_s
            yield per_worker(GaugeMetricFamily(
                "tda_stale_series", "Series not stored for settings.stale_after_intervals intervals (LIVE)",
                labels=labels), lambda w: sum(s["stale"] for s in series_freshness(w, now, stale_after_s)))

    def _request_families(self, workers: list[WorkerHandle]) -> Iterator[Metric]:
        requests = CounterMetricFamily("tda_exchange_requests", "HTTP requests to the exchange, by outcome",
                                       labels=["exchange", "outcome"])
        throttled = CounterMetricFamily("tda_exchange_throttled",
                                        "Answers 429 (rate limited) and 418 (banned) from the exchange",
                                        labels=["exchange", "status"])
        latency = HistogramMetricFamily("tda_exchange_request_duration_seconds",
                                        "Time from sending an HTTP request to the exchange to its answer",
                                        labels=["exchange"])
        bounds = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
        for w in workers:
            stats = w.telemetry.requests
            for outcome in OUTCOMES:
                requests.add_metric([w.exchange_id, outcome], stats.outcomes.get(outcome, 0))
            for status in THROTTLE_STATUSES:
                throttled.add_metric([w.exchange_id, status], stats.throttled.get(status, 0))
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, stats.latency_counts):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([w.exchange_id], buckets, stats.latency_sum)
        yield requests
        yield throttled
        yield latency

    def _series_families(self, workers: list[WorkerHandle], now: float) -> Iterator[Metric]:
        success = GaugeMetricFamily("tda_series_last_success_timestamp_seconds",
                                    "When the series was last stored (Unix time)", labels=SERIES_LABELS)
        lag = GaugeMetricFamily("tda_series_lag_seconds",
                                "How far the newest stored closed bar is behind the newest closed bar "
                                "the exchange should have", labels=SERIES_LABELS)
        now_ms = int(now * 1000)
        expected: dict[str, int] = {}   # per timeframe: one computation per scrape, not per series
        for w in workers:
            for (symbol, timeframe, dataset), (last_success, newest) in w.telemetry.series.items():
                labels = [w.exchange_id, symbol, timeframe, dataset]
                if last_success is not None:
                    success.add_metric(labels, last_success)
                if newest is not None:
                    if timeframe not in expected:
                        expected[timeframe] = newest_closed_bar_ms(now_ms, timeframe)
                    lag.add_metric(labels, max(0, expected[timeframe] - newest) / 1000)
        yield success
        yield lag

    def _history_families(self, workers: list[WorkerHandle]) -> Iterator[Metric]:
        ratio = GaugeMetricFamily("tda_history_progress_ratio", "Share of the HISTORY range done (0 to 1)",
                                  labels=["exchange"])
        eta = GaugeMetricFamily("tda_history_eta_seconds", "Time left to the end of the HISTORY run at "
                                "the rate seen so far", labels=["exchange"])
        ended = GaugeMetricFamily("tda_history_series", "HISTORY series that ended, by status",
                                  labels=["exchange", "status"])
        for w in workers:
            progress = w.telemetry.history
            if progress is not None:
                finished = w.state == WorkerState.DONE
                ratio.add_metric([w.exchange_id], 1.0 if finished else progress.ratio)
                left = 0.0 if finished else w.telemetry.history_eta_s()
                if left is not None:
                    eta.add_metric([w.exchange_id], left)
            if w.spec.mode == Mode.HISTORY:
                counts = {status: 0 for status in SeriesStatus}
                for result in list(w.series_results.values()):
                    counts[result.status] += 1
                for status, count in counts.items():
                    ended.add_metric([w.exchange_id, str(status)], count)
        yield ratio
        yield eta
        yield ended

    def _loki_families(self) -> Iterator[Metric]:
        stats = self._loki_stats()
        for key, help_text in LOKI_COUNTERS.items():
            yield CounterMetricFamily(f"tda_loki_{key}", help_text, value=stats.get(key, 0))
        yield GaugeMetricFamily("tda_loki_pending", "Log records waiting to be shipped to Loki",
                                value=stats.get("pending", 0))
