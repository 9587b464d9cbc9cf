"""What the adapter takes from ccxt for KuCoin and Coinbase: candles per request and pace.

KuCoin spot: ``features.spot.fetchOHLCV.limit`` 1500 and ``kucoin.fetch_spot_ohlcv`` sends up to
1500 (its maxLimit, KuCoin's own cap): they agree, no override. Coinbase: features 300 and
``coinbase.fetch_ohlcv`` caps the window at 300 bars (Coinbase refuses more than 350): they agree.
The pace is ccxt's ``rateLimit`` x the candle endpoint's cost: KuCoin 7.5 ms x 3, Coinbase 34 ms x 3.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from simulator import ExchangeSimulator
from worker.exchange import ExchangeClient

MINUTE = 60_000


def _client_facts(sim: ExchangeSimulator, exchange: str, symbol: str) -> tuple[int | None, float]:
    async def run() -> tuple[int | None, float]:
        client = ExchangeClient(exchange, sim.ccxt_config(exchange))
        await client.open()
        try:
            since = int(time.time() * 1000) - 3_000 * MINUTE
            return client.max_ohlcv_limit(symbol, "1m", since), client.seconds_per_ohlcv_request()
        finally:
            await client.close()
    return asyncio.run(run())


@pytest.mark.parametrize(("exchange", "symbol", "page", "pace"), [
    ("kucoin", "BTC/USDT", 1500, 0.0225), ("coinbase", "BTC/USD", 300, 0.102)])
def test_page_size_from_features_and_pace_from_the_candle_endpoint_cost(
        sim: ExchangeSimulator, exchange: str, symbol: str, page: int, pace: float) -> None:
    sim.set_rate_limit(exchange, enabled=False)
    limit, seconds = _client_facts(sim, exchange, symbol)
    assert limit == page
    assert seconds == pytest.approx(pace)
