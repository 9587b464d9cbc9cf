"""A ``unittest.mock`` stand-in for a ccxt async exchange, for the unit tests."""

from __future__ import annotations

from typing import Any, Callable
from unittest.mock import AsyncMock, MagicMock

import ccxt.async_support as ccxt_async

from worker.exchange import ExchangeClient

MINUTE = 60_000


def mock_exchange(
    *,
    symbols: tuple[str, ...] = ("BTC/USDT",),
    timeframes: tuple[str, ...] = ("1m", "1h", "1d"),
    ohlcv: Callable[..., Any] | list | None = None,
    server_time_ms: Callable[[], int] | None = None,
    ohlcv_limit: int = 1000,
) -> MagicMock:
    exchange = MagicMock(spec=ccxt_async.Exchange)
    exchange.id = "mockex"
    exchange.markets = {s: {"symbol": s, "type": "spot", "spot": True} for s in symbols}
    exchange.timeframes = {tf: tf for tf in timeframes}
    exchange.has = {"fetchOHLCV": True, "fetchTime": server_time_ms is not None}
    exchange.features = {"spot": {"fetchOHLCV": {"limit": ohlcv_limit}}}
    exchange.market = lambda symbol: exchange.markets[symbol]
    exchange.last_response_headers = {}
    exchange.load_markets = AsyncMock(return_value=exchange.markets)
    exchange.close = AsyncMock()
    if callable(ohlcv) or isinstance(ohlcv, Exception):
        exchange.fetch_ohlcv = AsyncMock(side_effect=ohlcv)
    else:
        exchange.fetch_ohlcv = AsyncMock(return_value=ohlcv or [])
    if server_time_ms is not None:
        exchange.fetch_time = AsyncMock(side_effect=lambda *a: server_time_ms())
    return exchange


async def no_sleep(seconds: float) -> None:
    return None


def client_for(exchange: MagicMock, *, clock: Callable[[], float], sleeps: list | None = None,
               **kwargs: Any) -> ExchangeClient:
    async def record_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return ExchangeClient("mockex", {}, factory=lambda settings: exchange, clock=clock,
                          sleep=record_sleep, **kwargs)


def candle(ts: int, price: float = 100.0, volume: float = 1.0) -> list[float]:
    return [ts, price, price + 2, price - 1, price + 1, volume]
