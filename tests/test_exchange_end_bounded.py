"""Exchanges that serve the newest bars up to an end (Bybit): the adapter bounds each page."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt_async

from tests.mock_exchange import MINUTE, mock_exchange, no_sleep
from worker.exchange import OHLCV_END_BOUNDED, ExchangeClient


def _calls(exchange_id: str, *request: object) -> list:
    exchange = mock_exchange()

    async def go() -> None:
        client = ExchangeClient(exchange_id, {}, factory=lambda settings: exchange, clock=lambda: 0.0,
                                sleep=no_sleep)
        await client.open()
        await client.fetch_ohlcv(*request)
    asyncio.run(go())
    return [call.args for call in exchange.fetch_ohlcv.call_args_list]


def test_a_bybit_page_is_bounded_at_the_open_of_its_last_bar() -> None:
    assert "bybit" in OHLCV_END_BOUNDED
    since = 1_700_000_000_000 // MINUTE * MINUTE
    assert _calls("bybit", "BTC/USDT", "1m", since, 1000) == [
        ("BTC/USDT", "1m", since, 1000, {"until": since + 999 * MINUTE})]
    assert _calls("bybit", "BTC/USDT", "1h", since, 3) == [
        ("BTC/USDT", "1h", since, 3, {"until": since + 2 * 60 * MINUTE})]


def test_the_newest_bars_and_other_exchanges_are_asked_as_before() -> None:
    assert _calls("bybit", "BTC/USDT", "1m", None, 5) == [("BTC/USDT", "1m", None, 5)]
    assert _calls("binance", "BTC/USDT", "1m", 0, 5) == [("BTC/USDT", "1m", 0, 5)]


def test_a_bybit_kline_request_is_paced_by_its_cost_in_ccxt() -> None:
    """ccxt: rateLimit 20 ms x cost 5 of v5/market/kline = one request per 100 ms."""
    async def go() -> float:
        client = ExchangeClient("bybit", {}, factory=lambda settings: ccxt_async.bybit(settings))
        client._exchange = ccxt_async.bybit({})
        try:
            return client.seconds_per_ohlcv_request()
        finally:
            await client._exchange.close()
    assert abs(asyncio.run(go()) - 0.1) < 1e-9
