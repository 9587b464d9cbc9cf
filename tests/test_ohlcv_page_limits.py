"""Candles per request where ccxt's ``features`` and its own ``fetch_ohlcv`` disagree.

The adapter pages with what a request really carries. For Binance derivatives ccxt 4.5.90
reports ``features.forDerivatives.fetchOHLCV.limit`` 500 while ``binance.fetch_ohlcv`` sends
up to 1,000 (Binance itself serves 1,500 on /fapi/v1/klines): paging by 500 would spend twice
the requests a backfill needs.
"""

from __future__ import annotations

import asyncio
import time

from core.series import Candle, SeriesKey
from simulator import ExchangeSimulator, truth
from worker.backfill import backfill_series
from worker.exchange import ExchangeClient

MINUTE = 60_000


def _limit(sim: ExchangeSimulator, exchange: str, symbol: str) -> int | None:
    async def run() -> int | None:
        client = ExchangeClient(exchange, {**sim.ccxt_config(exchange), "rateLimit": 1})
        await client.open()
        try:
            return client.max_ohlcv_limit(symbol, "1m", int(time.time() * 1000) - 3_000 * MINUTE)
        finally:
            await client.close()
    return asyncio.run(run())


def test_binance_derivatives_page_by_what_ccxt_sends_not_by_its_features(sim: ExchangeSimulator) -> None:
    assert _limit(sim, "binanceusdm", "BTC/USDT:USDT") == 1000


def test_spot_keeps_ccxt_features_limit(sim: ExchangeSimulator) -> None:
    assert _limit(sim, "binance", "BTC/USDT") == 1000
    assert _limit(sim, "kraken", "BTC/USD") == 720


def test_a_binanceusdm_backfill_takes_1000_bar_pages_and_equals_truth(sim: ExchangeSimulator) -> None:
    series = SeriesKey("binanceusdm", "BTC/USDT:USDT", "1m")
    end = int(time.time() * 1000) // MINUTE * MINUTE - 2 * MINUTE
    start = end - 3_000 * MINUTE
    got: list[Candle] = []

    async def emit(_: SeriesKey, candles: list[Candle]) -> None:
        got.extend(candles)

    async def run() -> None:
        client = ExchangeClient("binanceusdm", {**sim.ccxt_config("binanceusdm"), "rateLimit": 1})
        await client.open()
        try:
            outcome = await backfill_series(client, series, start, end, page_limit=1000, emit=emit)
        finally:
            await client.close()
        assert outcome.status == "complete"

    sim.clear_requests()
    asyncio.run(run())
    assert [list(c) for c in got] == truth("binanceusdm", "BTC/USDT:USDT", "1m", start, end, time.time() * 1000)
    pages = [r for r in sim.requests if r.endpoint == "klines"]
    assert {r.query["limit"] for r in pages} == {"1000"} and len(pages) == 3
