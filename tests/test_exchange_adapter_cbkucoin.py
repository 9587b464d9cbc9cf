"""What the adapter takes from ccxt for KuCoin and Coinbase: candles per request and pace.

KuCoin spot: ``features.spot.fetchOHLCV.limit`` 1500 and ``kucoin.fetch_spot_ohlcv`` sends up to
1500 (its maxLimit, KuCoin's own cap): they agree, no override. Coinbase: features 300 and
``coinbase.fetch_ohlcv`` caps the window at 300 bars (Coinbase refuses more than 350): they agree.
The pace is ccxt's ``rateLimit`` x the candle endpoint's cost: Coinbase 34 ms x 3; KuCoin 16 ms x 3,
as its public pool allows (ccxt's 7.5 ms is the private spot pool's pace), unless configured.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from simulator import ExchangeSimulator
from worker.exchange import ExchangeClient

MINUTE = 60_000


def _client_facts(sim: ExchangeSimulator, exchange: str, symbol: str,
                  **settings: object) -> tuple[int | None, float]:
    async def run() -> tuple[int | None, float]:
        client = ExchangeClient(exchange, {**sim.ccxt_config(exchange), **settings})
        await client.open()
        try:
            since = int(time.time() * 1000) - 3_000 * MINUTE
            return client.max_ohlcv_limit(symbol, "1m", since), client.seconds_per_ohlcv_request()
        finally:
            await client.close()
    return asyncio.run(run())


@pytest.mark.parametrize(("exchange", "symbol", "page", "pace"), [
    ("kucoin", "BTC/USDT", 1500, 0.048), ("coinbase", "BTC/USD", 300, 0.102)])
def test_page_size_from_features_and_pace_from_the_candle_endpoint_cost(
        sim: ExchangeSimulator, exchange: str, symbol: str, page: int, pace: float) -> None:
    sim.set_rate_limit(exchange, enabled=False)
    limit, seconds = _client_facts(sim, exchange, symbol)
    assert limit == page
    assert seconds == pytest.approx(pace)


def test_a_configured_rate_limit_wins_over_the_adapter_default(sim: ExchangeSimulator) -> None:
    assert _client_facts(sim, "kucoin", "BTC/USDT", rateLimit=10)[1] == pytest.approx(0.030)


def test_kucoin_backfills_in_its_public_pool_without_429s(sim: ExchangeSimulator) -> None:
    """KuCoin's public pool (2,000 weight / 30 s per IP, here scaled to 200 / 3 s) is half the pace
    ccxt's rateLimit keeps (7.5 ms a weight unit, its private spot pool): three series backfilled
    at once must still meet no 429."""
    from core.series import SeriesKey
    from worker.backfill import backfill_series

    sim.set_rate_limit("kucoin", enabled=True, limit=200, window=3)
    end = int(time.time() * 1000) // MINUTE * MINUTE - 2 * MINUTE
    start = end - 50 * 40 * MINUTE
    symbols = ("BTC/USDT", "ETH/USDT", "SOL/USDT")

    async def emit(*_: object) -> None:
        return None

    async def run() -> None:
        client = ExchangeClient("kucoin", sim.ccxt_config("kucoin"))
        await client.open()
        try:
            await asyncio.gather(*(backfill_series(client, SeriesKey("kucoin", symbol, "1m"), start, end,
                                                   page_limit=40, emit=emit) for symbol in symbols))
        finally:
            await client.close()

    sim.reset_counters()
    asyncio.run(run())
    counters = sim.counters("kucoin")
    assert counters.get("endpoint:market/candles", 0) >= 150
    assert counters.get("status:429", 0) == 0
