"""What /metrics costs with many series: one render of the page, and one per-series report.

The supervisor renders the page on every scrape (every 15 s is usual) from what the workers
reported; a LIVE worker pickles one SeriesFreshness message per cycle.
"""

from __future__ import annotations

import pickle
import statistics
import time
from dataclasses import dataclass

from core.config import AppConfig
from core.protocol import Envelope, Heartbeat, Mode, WorkerSpec
from core.telemetry import RequestStats, SeriesFreshness
from supervisor.metrics import CollectorMetrics
from supervisor.workers import WorkerHandle

TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"]
EXCHANGES = ["binance", "okx", "bybit"]


@dataclass(frozen=True)
class RenderFigures:
    series: int
    render_ms: float            # median of the runs
    page_bytes: int
    report_pickle_ms: float     # one worker's per-cycle SeriesFreshness, pickled
    report_bytes: int


def handles(series: int) -> list[WorkerHandle]:
    """Workers whose series add up to ``series``, each having reported all of them."""
    per_exchange = series // len(EXCHANGES)
    symbols = [f"S{i:04d}/USDT" for i in range(per_exchange // len(TIMEFRAMES) + 1)]
    now = time.time()
    workers = []
    for exchange in EXCHANGES:
        pairs = [(s, tf) for s in symbols for tf in TIMEFRAMES][:per_exchange]
        config = AppConfig.model_validate({"exchanges": {exchange: [
            {"symbol": s, "timeframes": [tf for x, tf in pairs if x == s]}
            for s in dict.fromkeys(x for x, _ in pairs)]}})
        worker = WorkerHandle(WorkerSpec(exchange, config.exchanges[exchange], config.settings, config.storage,
                                         Mode.LIVE))
        worker.on_message(Envelope(exchange, None, now, Heartbeat(  # type: ignore[arg-type]
            100, 0, now, requests=RequestStats({"ok": 1000}))), now)
        worker.on_message(Envelope(exchange, None, now, freshness(pairs, now)), now)  # type: ignore[arg-type]
        workers.append(worker)
    return workers


def freshness(pairs: list[tuple[str, str]], now: float) -> SeriesFreshness:
    newest = int(now * 1000) // 86_400_000 * 86_400_000 - 86_400_000
    return SeriesFreshness([(s, tf, "ohlcv", now, newest) for s, tf in pairs])


def measure(series: int = 3000, runs: int = 20) -> RenderFigures:
    workers = handles(series)
    metrics = CollectorMetrics(lambda: workers, stale_after_s=180)
    timings, page = [], b""
    for _ in range(runs):
        started = time.perf_counter()
        page = metrics.render()
        timings.append((time.perf_counter() - started) * 1000)
    report = freshness([(f"S{i:04d}/USDT", "1m") for i in range(series // len(EXCHANGES))], time.time())
    started = time.perf_counter()
    for _ in range(runs):
        blob = pickle.dumps(report)
    pickle_ms = (time.perf_counter() - started) * 1000 / runs
    return RenderFigures(series, statistics.median(timings), len(page), pickle_ms, len(blob))
