"""Where one worker's CPU goes between an HTTP body and a committed SQLite row.

The end-to-end figure comes from ``inprocess.product_history`` with no latency and no
limits. This module splits it into stages by timing the product's own functions, one at a
time, on a real 1,000-bar page from the simulator. What the stages do not cover (aiohttp,
asyncio, ccxt's request path, the throttler) is the end-to-end cost minus their sum.

The garbage collector is off while a stage is timed: a collection triggered inside one
stage would charge it for everyone's objects. GC is part of the remainder instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import pstats
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import ccxt
import ccxt.async_support as ccxt_async

from bench.sim import SimProcess
from core.series import SeriesKey, to_rows
from core.timefmt import iso_utc
from worker import ohlcv_fast
from worker.candles import parse_candles
from worker.sinks.sqlite import SqliteSink

try:  # ccxt decodes with orjson when it is installed, as it is in this venv
    import orjson

    _loads: Callable[[bytes], object] = orjson.loads
    JSON_NAME = "orjson.loads"
except ImportError:  # pragma: no cover
    _loads, JSON_NAME = json.loads, "json.loads"


@contextlib.contextmanager
def _no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _per_page_ms(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    fn()  # first call pays for lazy imports and caches, which a long run amortises
    with _no_gc():
        started = time.process_time()
        for _ in range(repeat):
            result = fn()
        elapsed = time.process_time() - started
    return elapsed / repeat * 1000, result


def stage_breakdown(sim: SimProcess, since_ms: int, repeat: int = 20) -> dict[str, float]:
    """CPU milliseconds per 1,000-candle page for each stage of the HISTORY path."""
    url = (f"{sim.base_url}/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1000"
           f"&startTime={since_ms}")
    body = urllib.request.urlopen(url).read()
    exchange = ccxt.binance(sim.ccxt["binance"])  # parse_ohlcv is the same code in async
    exchange.load_markets()
    ohlcv_fast.install(exchange)  # as the worker's exchanges have it (worker/exchange.py)
    market = exchange.market("BTC/USDT")
    stages: dict[str, float] = {}
    stages[f"JSON decode ({JSON_NAME})"], raw = _per_page_ms(lambda: _loads(body), repeat)
    stages["ccxt parse_ohlcvs (checked fast path)"], ohlcv = _per_page_ms(
        lambda: exchange.parse_ohlcvs(raw, market, "1m", None, None), repeat)
    stages["worker.candles.parse_candles"], batch = _per_page_ms(
        lambda: parse_candles(ohlcv, "1m"), repeat)
    candles = batch.candles
    series = SeriesKey("binance", "BTC/USDT", "1m")
    stages["worker.candles.to_rows"], rows = _per_page_ms(
        lambda: to_rows(series, candles, int(time.time() * 1000)), repeat)
    stages["  of the write: iso_utc x2 per row"], _ = _per_page_ms(
        lambda: [(iso_utc(r.timestamp), iso_utc(r.ingested_at)) for r in rows], repeat)
    # One HISTORY flush is 50,000 rows in one transaction; distinct keys, as a backfill writes.
    with tempfile.TemporaryDirectory() as tmp:
        sink = SqliteSink(Path(tmp) / "stages.sqlite")
        sink.ensure()
        flush = [r._replace(timestamp=r.timestamp + k * 10**11) for k in range(50) for r in rows]
        with _no_gc():
            started = time.process_time()
            sink.write(flush)
            stages["SqliteSink.write (50k-row flush)"] = (time.process_time() - started) / 50 * 1000
        sink.close()
    return stages


def request_path_ms(sim: SimProcess, since_ms: int, pages: int = 30) -> float:
    """Client CPU per page of ccxt.async_support ``fetch_ohlcv`` alone (HTTP + JSON + parse).

    The simulator runs in another process, so ``process_time`` here is the client's only.
    """
    async def run() -> float:
        exchange = ccxt_async.binance({**sim.ccxt["binance"], "rateLimit": 0.001})
        ohlcv_fast.install(exchange)
        try:
            await exchange.load_markets()
            await exchange.fetch_ohlcv("BTC/USDT", "1m", since_ms, 1000)
            with _no_gc():
                started = time.process_time()
                for _ in range(pages):
                    await exchange.fetch_ohlcv("BTC/USDT", "1m", since_ms, 1000)
                return (time.process_time() - started) / pages * 1000
        finally:
            await exchange.close()
    return asyncio.run(run())


_AREAS = (
    ("idle: epoll wait", ("select.epoll",)),
    ("ccxt", ("site-packages/ccxt/",)),
    ("aiohttp / yarl / multidict", ("aiohttp", "yarl", "multidict")),
    ("asyncio", ("/asyncio/",)),
    ("JSON decode", ("orjson", "json/")),
    ("worker/candles.py", ("worker/candles.py",)),
    ("core/timeframes.py", ("core/timeframes.py",)),
    ("worker/backfill.py", ("worker/backfill.py",)),
    ("worker/history.py", ("worker/history.py",)),
    ("worker/exchange.py", ("worker/exchange.py",)),
    ("regex (timeframe parsing)", ("re.Pattern", "re.Match")),
)


def profile_by_area(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time (tottime) of the main thread, summed per area of the code.

    cProfile sees the event-loop thread only; the store write runs in the writer process
    (``worker/sinks/offloaded.py``) and is in :func:`stage_breakdown` instead.
    """
    totals: dict[str, float] = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{name}"
        area = next((label for label, keys in _AREAS if any(k in where for k in keys)), "other")
        totals[area] = totals.get(area, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])
