"""HISTORY paging against OKX's two candle endpoints, with the real ccxt and the simulator.

OKX serves 100 bars a page from its archive (history-candles) and 300 near the present
(candles); ccxt picks the endpoint by the age of ``since``. A backfill across the border asks
each endpoint for the page it serves whole: no request is spent on bars it would drop.
"""

from __future__ import annotations

import asyncio
import math
import time

from core.series import Candle, SeriesKey
from simulator import ExchangeSimulator, truth
from worker.backfill import backfill_series
from worker.exchange import ExchangeClient

STEP = 15 * 60_000


def test_okx_backfill_uses_full_pages_on_both_sides_of_the_archive_border(sim: ExchangeSimulator) -> None:
    series = SeriesKey("okx", "BTC/USDT", "15m")
    end = int(time.time() * 1000) // STEP * STEP - 4 * STEP     # closed bars only
    start = end - 2_400 * STEP                                 # about 960 bars in the archive
    got: list[Candle] = []

    async def emit(_: SeriesKey, candles: list[Candle]) -> None:
        got.extend(candles)

    async def run() -> None:
        client = ExchangeClient("okx", {**sim.ccxt_config("okx"), "rateLimit": 1})
        await client.open()
        try:
            outcome = await backfill_series(client, series, start, end, page_limit=1000,
                                            emit=emit, concurrency=4)
        finally:
            await client.close()
        assert outcome.status == "complete" and outcome.covered_until == end

    sim.clear_requests()
    asyncio.run(run())
    assert [list(c) for c in got] == truth("okx", "BTC/USDT", "15m", start, end, time.time() * 1000)
    pages = [r for r in sim.requests if r.endpoint and "candles" in r.endpoint]
    archive = [r for r in pages if r.endpoint == "market/history-candles"]
    recent = [r for r in pages if r.endpoint == "market/candles"]
    assert {r.query["limit"] for r in archive} == {"100"}
    assert {r.query["limit"] for r in recent} == {"300"}
    border = int(time.time() * 1000) - 1439 * STEP
    needed = math.ceil((border - start) / STEP / 100) + math.ceil((end - border) / STEP / 300)
    assert len(pages) <= needed + 2  # a window split by the border
