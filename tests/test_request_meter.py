"""Request metrics measured where ccxt sends each HTTP request, against the simulator."""

from __future__ import annotations

import asyncio

from core.series import Candle, SeriesKey
from core.telemetry import LATENCY_BUCKETS
from worker.exchange import ExchangeClient
from worker.history_progress import ProgressTally
from worker.request_meter import RequestMeter

MINUTE = 60_000


def test_outcomes_429_answers_and_latency_of_real_ccxt_requests(sim) -> None:
    sim.add_fault("binance", "http_429", count=1, endpoint="klines")
    sim.add_fault("binance", "http_503", count=1, endpoint="klines")
    client = ExchangeClient("binance", sim.ccxt_config("binance"))

    async def go() -> None:
        try:
            await client.open()
            await client.fetch_ohlcv("BTC/USDT", "1m", None, 5)
        finally:
            await client.close()
    asyncio.run(go())
    stats = client.requests.snapshot()
    assert stats.outcomes["rate_limited"] == 1 and stats.outcomes["network_error"] == 1
    assert stats.outcomes["ok"] >= 2                           # markets (+ time), then the candles
    assert stats.throttled == {"429": 1}
    assert sum(stats.latency_counts) == sum(stats.outcomes.values()) and stats.latency_sum > 0


def test_latency_buckets_are_upper_bounds() -> None:
    meter = RequestMeter()
    meter.record(LATENCY_BUCKETS[0], "ok")
    meter.record(LATENCY_BUCKETS[0] + 0.001, "ok", 418)
    meter.record(60.0, "network_error")
    stats = meter.snapshot()
    assert stats.latency_counts[0] == 1 and stats.latency_counts[1] == 1 and stats.latency_counts[-1] == 1
    assert stats.throttled == {"418": 1} and stats.outcomes == {"ok": 2, "network_error": 1}


def test_history_progress_counts_grid_bars_over_every_series() -> None:
    tally = ProgressTally(0, 100 * MINUTE)
    one, two = SeriesKey("x", "A/B", "1m"), SeriesKey("x", "C/D", "1m")
    tally.begin(one, 0)
    tally.begin(two, 50 * MINUTE)                              # resumed halfway
    assert (tally.snapshot().bars_total, tally.snapshot().bars_done) == (200, 50)
    tally.fetched(one, [Candle(ts * MINUTE, 1, 1, 1, 1, 1) for ts in range(0, 30)])
    assert tally.snapshot().bars_done == 80
    tally.ended(two)                                           # e.g. no trades after 50 min
    progress = tally.snapshot()
    assert progress.bars_done == 130 and progress.series_done == 1 and progress.ratio == 0.65
