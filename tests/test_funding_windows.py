"""Funding HISTORY on an exchange that keeps the newest rows of a window (Bybit): a funding time
exactly at the start of the range, which such a window drops from its first page, is asked for."""

from __future__ import annotations

import asyncio

from core.series import FUNDING_RATES, series_key
from worker.datasets.funding import FundingRates

HOUR = 3_600_000
INTERVAL = 8 * HOUR
T0 = 1_700_006_400_000 // INTERVAL * INTERVAL


class WindowedFunding:
    """ccxt over Bybit: ``endTime = since + limit intervals`` (or ``until``), both ends included,
    the newest ``limit`` of the funding times inside, ascending."""

    def __init__(self, exchange_id: str, now: int) -> None:
        self.exchange_id, self.now, self.calls = exchange_id, now, []

    async def exchange_now_ms(self) -> int:
        return self.now

    async def fetch_funding_rate_history(self, symbol, since, limit, params=None):
        self.calls.append((since, limit, dict(params or {})))
        end = (params or {}).get("until", since + limit * INTERVAL)
        times = [t for t in range(T0 - 100 * INTERVAL, self.now + 1, INTERVAL) if since <= t <= min(end, self.now)]
        return [{"timestamp": t, "fundingRate": t / 1e18} for t in times[-limit:]]


def _backfill(exchange_id: str, start: int, end: int) -> tuple[list, WindowedFunding]:
    client = WindowedFunding(exchange_id, T0 + 500 * INTERVAL)
    stored: list = []

    async def emit(series, points) -> None:
        stored.extend(points)
    series = series_key(exchange_id, "BTC/USDT:USDT", "", FUNDING_RATES)
    outcome = asyncio.run(FundingRates().backfill(client, series, start, end, page_limit=200, emit=emit))
    assert outcome.error is None
    return [p.timestamp for p in stored], client


def test_a_range_starting_on_a_funding_time_keeps_it() -> None:
    got, client = _backfill("bybit", T0, T0 + 450 * INTERVAL)
    assert got == list(range(T0, T0 + 450 * INTERVAL, INTERVAL))
    assert client.calls[1] == (T0, 200, {"until": T0 + INTERVAL - 1})     # the head, asked once
    assert len(client.calls) == 4                                         # 3 windows + the head


def test_a_range_between_funding_times_asks_once_more_and_finds_nothing_new() -> None:
    got, client = _backfill("bybit", T0 + HOUR, T0 + 300 * INTERVAL)
    assert got == list(range(T0 + INTERVAL, T0 + 300 * INTERVAL, INTERVAL))


def test_an_exchange_serving_the_oldest_first_is_not_asked_twice() -> None:
    got, client = _backfill("binanceusdm", T0, T0 + 300 * INTERVAL)
    assert all(not params for _, _, params in client.calls)
