"""Scenarios that drive the product's LIVE collector and HISTORY run inside the bench process,
plus the baseline.

The session is built as tests/test_live.py builds it: ``ExchangeConfig`` + ``Settings`` +
``SqliteSink``, with the real ``ExchangeClient`` and the real ccxt talking HTTP to the
simulator process. ``open()`` (load_markets, schema) runs before the clock starts: every
figure here is about the steady-state work, not about connecting.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import logging
import sqlite3
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import ccxt
import psutil

from bench.sim import SimProcess
from core.config import SQLITE_HISTORY_FLUSH_ROWS, ExchangeConfig, Settings, StorageConfig
from worker.history import HistoryRun
from worker.live import LiveCollector
from worker.process import tune_garbage_collector
from worker.session import ExchangeSession
from worker.sinks.factory import make_sink

TF_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
         "4h": 14_400_000, "1d": 86_400_000}


class EventCounter(logging.Handler):
    """Counts the workers' log events (backoff_retry, fetch_error...) and prints nothing.

    Without a handler, logging's last resort would print every warning to stderr and
    the bench output would drown in them; the counts are what the report needs.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.events[getattr(record, "event", record.getMessage()[:60])] += 1

    def take(self) -> dict[str, int]:
        events, self.events = dict(self.events), Counter()
        return events


EVENTS = EventCounter()


def install_event_counter() -> None:
    root = logging.getLogger()
    root.addHandler(EVENTS)
    root.setLevel(logging.WARNING)


def make_session(sim: SimProcess, exchange: str, series: dict[str, list[str]], db: Path, *,
                ccxt_overrides: dict[str, Any] | None = None, bulk: bool = False,
                **settings: Any) -> ExchangeSession:
    """``bulk``: the store HISTORY uses in a worker process (written from a process of its own)."""
    config = ExchangeConfig(ccxt={**sim.ccxt[exchange], **(ccxt_overrides or {})},
                            symbols=[{"symbol": s, "timeframes": tfs} for s, tfs in series.items()])
    sink = make_sink(StorageConfig(backend="sqlite", sqlite={"path": str(db)}), bulk=bulk)
    settings.setdefault("history_flush_rows", SQLITE_HISTORY_FLUSH_ROWS)  # as the CLI's default
    return ExchangeSession(exchange, config, Settings(health_port=0, **settings), sink)


def stored_rows(db: Path, exchange: str | None = None) -> int:
    with sqlite3.connect(db) as conn:
        if exchange is None:
            return conn.execute("SELECT COUNT(*) FROM market_data_ohlcv").fetchone()[0]
        return conn.execute("SELECT COUNT(*) FROM market_data_ohlcv WHERE exchange = ?",
                            (exchange,)).fetchone()[0]


@dataclass
class HistoryTiming:
    wall_s: float
    cpu_s: float            # the worker's own process
    writer_cpu_s: float     # its store writer process (worker/sinks/offloaded.py)
    candles: int
    pages: int
    stored: int
    statuses: list[str]
    events: dict[str, int] = field(default_factory=dict)
    profile: cProfile.Profile | None = None


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds a process has used so far (0 when there is none)."""
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def product_history(sim: SimProcess, db: Path, exchange: str, series: dict[str, list[str]],
                    start_ms: int, end_ms: int, *, ccxt_overrides: dict | None = None,
                    profile: bool = False) -> HistoryTiming:
    """``HistoryRun.run`` over [start, end): wall and CPU time of the backfill alone.

    The store is written from a process of its own, as in a HISTORY worker; its CPU is
    counted separately (``writer_cpu_s``).
    """
    session = make_session(sim, exchange, series, db, ccxt_overrides=ccxt_overrides, bulk=True)
    profiler = cProfile.Profile() if profile else None

    async def scenario() -> tuple[Any, float, float, float]:
        await session.open()  # the store's writer process is running from here on
        EVENTS.take()
        if profiler:
            profiler.enable()
        writer = session.sink.pid
        t0, c0, w0 = time.perf_counter(), time.process_time(), process_cpu_s(writer)
        report = await HistoryRun(session).run(start_ms, end_ms)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        writer_cpu = process_cpu_s(writer) - w0
        if profiler:
            profiler.disable()
        await session.close()
        return report, wall, cpu, writer_cpu

    young, middle, old = gc.get_threshold()
    tune_garbage_collector()  # as a HISTORY worker process does
    try:
        report, wall, cpu, writer_cpu = asyncio.run(scenario())
    finally:
        gc.set_threshold(young, middle, old)
    return HistoryTiming(wall, cpu, writer_cpu, sum(o.candles for o in report.outcomes),
                      sum(o.pages for o in report.outcomes), stored_rows(db, exchange),
                      [o.status for o in report.outcomes], EVENTS.take(), profiler)


def baseline_history(sim: SimProcess, db: Path, series: Sequence[tuple[str, str]],
                     start_ms: int, end_ms: int, *, ccxt_overrides: dict | None = None) -> HistoryTiming:
    """The loop a user writes by hand: sync ccxt, one page after another, commit per page.

    ``enableRateLimit`` is on (ccxt's default), the store is SQLite with its defaults.
    Series run one after the other, as a plain for-loop does.
    """
    exchange = _baseline_exchange(sim, ccxt_overrides)
    conn = _baseline_store(db)
    candles = pages = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for symbol, timeframe in series:
        since = start_ms
        while since < end_ms:
            page = exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=1000)
            pages += 1
            if not page:
                break
            rows = [(symbol, timeframe, *c) for c in page if c[0] < end_ms]
            conn.executemany("INSERT OR REPLACE INTO ohlcv VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.commit()
            candles += len(rows)
            since = page[-1][0] + TF_MS[timeframe]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.close()
    return HistoryTiming(wall, cpu, 0.0, candles, pages, candles, ["complete"])


def _baseline_exchange(sim: SimProcess, overrides: dict | None = None) -> ccxt.Exchange:
    exchange = ccxt.binance({**sim.ccxt["binance"], "enableRateLimit": True, **(overrides or {})})
    exchange.load_markets()
    return exchange


def _baseline_store(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS ohlcv (symbol TEXT, timeframe TEXT, ts INTEGER, "
                 "open REAL, high REAL, low REAL, close REAL, volume REAL, "
                 "PRIMARY KEY (symbol, timeframe, ts))")
    return conn


def baseline_live(sim: SimProcess, db: Path, series: Sequence[tuple[str, str]]) -> float:
    """One hand-written LIVE cycle: the last two bars of each series in turn, commit each."""
    exchange = _baseline_exchange(sim)
    conn = _baseline_store(db)
    started = time.perf_counter()
    for symbol, timeframe in series:
        page = exchange.fetch_ohlcv(symbol, timeframe, limit=2)
        conn.executemany("INSERT OR REPLACE INTO ohlcv VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [(symbol, timeframe, *c) for c in page])
        conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


@dataclass
class LiveTiming:
    series: int
    cycle_s: list[float]
    rows_written: int
    events: dict[str, int]


def product_live(sim: SimProcess, db: Path, series: dict[str, list[str]], cycles: int, *,
                 presample_clock: bool = True) -> LiveTiming:
    """``LiveCollector.cycle`` timed one cycle at a time, as the schedule loop calls it.

    ``ExchangeSession.open`` reads the exchange clock, and the worker reads it again every 600 s
    (worker/exchange.py CLOCK_REFRESH_SECONDS), so most cycles need no time request. With
    ``presample_clock`` False, the first timed cycle is one that reads it.
    """
    session = make_session(sim, "binance", series, db)
    live = LiveCollector(session)

    async def scenario() -> list[float]:
        await session.open()  # reads the exchange clock
        if not presample_clock:
            session.client._clock_sampled_at = None  # as when the 600 s are up
        EVENTS.take()
        times = []
        for _ in range(cycles):
            t0 = time.perf_counter()
            await live.cycle()
            times.append(time.perf_counter() - t0)
        await session.close()
        return times

    times = asyncio.run(scenario())
    return LiveTiming(len(session.series), times, session.stats.rows_written, EVENTS.take())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
