"""What the adapter does for Bybit: bound each candle page with an end (Bybit otherwise serves its
newest bars), and ask for spot tickers by type (ccxt defaults Bybit to swaps)."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import ccxt.async_support as ccxt_async

from tests.mock_exchange import MINUTE, mock_exchange, no_sleep
from worker.exchange import ExchangeClient
from worker.exchange_facts import OHLCV_END_BOUNDED


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


def test_spot_tickers_are_asked_by_type_where_ccxt_defaults_to_swaps() -> None:
    """bybit.options.defaultType is "swap": a plain fetch_tickers would list the perpetuals."""
    calls = []
    for exchange_id, default in (("bybit", "swap"), ("binance", "spot")):
        exchange = mock_exchange()
        exchange.options = {"defaultType": default}
        exchange.has = {**exchange.has, "fetchTickers": True}
        exchange.fetch_tickers = AsyncMock(return_value={})

        async def go(exchange=exchange, exchange_id=exchange_id) -> None:
            client = ExchangeClient(exchange_id, {}, factory=lambda settings: exchange, clock=lambda: 0.0,
                                    sleep=no_sleep)
            await client.open()
            await client.fetch_tickers("spot")
            await client.fetch_tickers("swap")
        asyncio.run(go())
        calls.append([call.args for call in exchange.fetch_tickers.call_args_list])
    assert calls == [[(None, {"type": "spot"}), (None, {})], [(None, {}), (None, {"type": "swap"})]]
