"""Funding HISTORY on an exchange whose ``since`` windows lose rows (Bybit): pages go back from
ccxt's ``until`` instead, so a funding time at the start of the range, and a range that begins
before the listing, are stored whole."""

from __future__ import annotations

import asyncio

from core.series import FUNDING_RATES, series_key
from worker.datasets.funding import FundingRates

HOUR = 3_600_000
INTERVAL = 8 * HOUR
T0 = 1_700_006_400_000 // INTERVAL * INTERVAL
LISTED = T0 - 100 * INTERVAL


class BybitFunding:
    """ccxt over Bybit: with ``since``, the window [since, since + limit intervals]; with ``until``
    alone, everything up to it; of the funding times inside, the newest ``limit``, ascending."""

    def __init__(self, exchange_id: str, now: int) -> None:
        self.exchange_id, self.now, self.calls = exchange_id, now, []

    async def exchange_now_ms(self) -> int:
        return self.now

    async def fetch_funding_rate_history(self, symbol, since, limit, params=None):
        params = dict(params or {})
        self.calls.append((since, limit, params))
        low = LISTED if since is None else since
        high = params.get("until", self.now if since is None else since + limit * INTERVAL)
        times = [t for t in range(LISTED, self.now + 1, INTERVAL) if low <= t <= min(high, self.now)]
        return [{"timestamp": t, "fundingRate": t / 1e18} for t in times[-limit:]]


def _backfill(exchange_id: str, start: int, end: int) -> tuple[list, BybitFunding]:
    client = BybitFunding(exchange_id, T0 + 500 * INTERVAL)
    stored: list = []

    async def emit(series, points) -> None:
        stored.extend(points)
    series = series_key(exchange_id, "BTC/USDT:USDT", "", FUNDING_RATES)
    outcome = asyncio.run(FundingRates().backfill(client, series, start, end, page_limit=200, emit=emit))
    assert outcome.error is None and not outcome.unavailable
    return [p.timestamp for p in stored], client


def test_a_range_starting_on_a_funding_time_keeps_it() -> None:
    got, client = _backfill("bybit", T0, T0 + 450 * INTERVAL)
    assert got == list(range(T0, T0 + 450 * INTERVAL, INTERVAL))
    assert [(since, params) for since, _, params in client.calls][0] == (None, {"until": T0 + 450 * INTERVAL - 1})
    assert len(client.calls) == 3                          # 200 + 200 + 50


def test_a_range_starting_before_the_listing_is_stored_from_the_listing() -> None:
    got, client = _backfill("bybit", LISTED - 400 * INTERVAL, T0 + 10 * INTERVAL)
    assert got == list(range(LISTED, T0 + 10 * INTERVAL, INTERVAL))


def test_an_exchange_serving_the_oldest_first_pages_forward_from_since() -> None:
    got, client = _backfill("binanceusdm", T0 + HOUR, T0 + 100 * INTERVAL)
    assert client.calls[0] == (T0 + HOUR, 1000, {})
    assert got == list(range(T0 + INTERVAL, T0 + 100 * INTERVAL, INTERVAL))
