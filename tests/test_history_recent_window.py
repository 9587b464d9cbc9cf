"""HISTORY against an exchange that answers any ``since`` with its newest bars (Kraken's 720),
through the real ccxt and the simulator, at an instant whose newest minutes had no trade."""

from __future__ import annotations

import asyncio

from core.series import Candle, SeriesKey
from simulator import ExchangeSimulator, quiet_minutes, truth
from tests.dialect_contract import MIN, FakeClock
from worker.backfill import SeriesOutcome, backfill_series
from worker.exchange import ExchangeClient

# Kraken's ETH/USD had no trade in the 12 minutes before this instant, nor in 3 others of its
# newest 720: the answer holds 704 bars and ends a quarter of an hour before now.
NOW_MS = 1_796_418_739_829
START, END = 1_796_241_600_000, 1_796_414_400_000          # 48 h, ending 72 minutes before now
SERIES = SeriesKey("kraken", "ETH/USD", "1m")


def backfill() -> tuple[SeriesOutcome, list[Candle]]:
    clock = FakeClock(NOW_MS / 1000)
    sim = ExchangeSimulator(now=clock).start()
    sim.set_rate_limit("kraken", enabled=False)
    got: list[Candle] = []

    async def emit(_: SeriesKey, candles: list[Candle]) -> None:
        got.extend(candles)

    async def run() -> SeriesOutcome:
        client = ExchangeClient("kraken", {**sim.ccxt_config("kraken"), "rateLimit": 1}, clock=clock)
        await client.open()
        try:
            return await backfill_series(client, SERIES, START, END, page_limit=1000, emit=emit)
        finally:
            await client.close()
    try:
        return asyncio.run(run()), got
    finally:
        sim.stop()


def test_the_range_before_the_newest_window_is_unavailable_though_its_newest_minutes_were_quiet() -> None:
    now_minute = NOW_MS // MIN * MIN
    assert len(quiet_minutes("kraken", "ETH/USD", now_minute - 12 * MIN, now_minute)) == 12

    outcome, got = backfill()
    served_from = now_minute - 719 * MIN
    assert outcome.unavailable == [(START, served_from)]
    assert outcome.status == "partial_unavailable"
    assert [list(c) for c in got] == truth("kraken", "ETH/USD", "1m", served_from, END, NOW_MS)
