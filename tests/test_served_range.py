"""Unit tests: finding where an exchange's history begins from its refusals and first pages."""

from __future__ import annotations

import asyncio

import pytest

from core.series import SeriesKey
from worker.backfill import SeriesOutcome
from worker.errors import ExchangeRejected, UnsupportedSeries
from worker.served_range import oldest_accepted_since, report_unavailable, starts_at_retention_floor

MIN = 60_000
NOW = 1_800_000_000_000 // MIN * MIN + 25_000
SERIES = SeriesKey("gate", "BTC/USDT", "1m")


class RefusesOld:
    """Refuses a since more than ``keep`` bars back, like Gate; counts requests."""

    def __init__(self, keep: int, error: type[Exception] = ExchangeRejected) -> None:
        self.floor = NOW // MIN * MIN - (keep - 1) * MIN
        self.error = error
        self.requests = 0

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list:
        self.requests += 1
        if since < self.floor:
            raise self.error("Candlestick too long ago. Maximum 10000 points ago are allowed")
        return [[since, 1, 1, 1, 1, 1]]


def test_bisection_finds_the_oldest_accepted_since_in_a_few_requests() -> None:
    client = RefusesOld(10_000)
    found = asyncio.run(oldest_accepted_since(client, SERIES, NOW - 60 * 1440 * MIN, NOW))
    assert found == client.floor and client.requests <= 18


def test_a_refusal_of_the_present_too_is_not_about_age() -> None:
    client = RefusesOld(0)
    client.floor = NOW + MIN
    assert asyncio.run(oldest_accepted_since(client, SERIES, NOW - 1440 * MIN, NOW)) is None
    with pytest.raises(UnsupportedSeries):
        asyncio.run(oldest_accepted_since(RefusesOld(10, UnsupportedSeries), SERIES, NOW - 1440 * MIN, NOW))


def test_retention_floor_is_where_the_newest_window_begins() -> None:
    floor = NOW // MIN * MIN - 4999 * MIN
    assert starts_at_retention_floor(floor, NOW, 5000, "1m")
    assert starts_at_retention_floor(floor + 3 * MIN, NOW, 5000, "1m")        # quiet first minutes
    assert not starts_at_retention_floor(floor + 600 * MIN, NOW, 5000, "1m")  # a stretch without trades
    assert not starts_at_retention_floor(floor, NOW, None, "1m")


def test_adjacent_unavailable_ranges_are_joined() -> None:
    outcome = SeriesOutcome(SERIES, 0, NOW)
    report_unavailable(outcome, 0, 10 * MIN)
    report_unavailable(outcome, 10 * MIN, 12 * MIN)
    assert outcome.unavailable == [(0, 12 * MIN)]
