"""The probe's search for the oldest bar, on fake exchanges whose edge is known exactly: one
that refuses an old ``since`` and whose edge moves a bar while the search runs, and one whose
pages are bounded by an end and smaller than the page asked for."""

from __future__ import annotations

import asyncio
from typing import Any

from worker.probe import FLOOR_MS, MAX_BISECT_REQUESTS, Prober

MINUTE = 60_000
NOW = 1_796_000_000_000 // MINUTE * MINUTE


class RefusingOldSince:
    """Gate-like: a since more than ``keep`` bars back is refused; the clock moves one bar
    after ``move_after`` requests."""

    def __init__(self, keep: int, move_after: int) -> None:
        self.keep, self.move_after, self.calls, self.now = keep, move_after, 0, NOW

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int | None, limit: int) -> list[list[Any]]:
        self.calls += 1
        if self.calls > self.move_after:
            self.now = NOW + MINUTE
        if since < self.now - (self.keep - 1) * MINUTE:
            raise ValueError("Candlestick too long ago")
        return [[ts, 1, 1, 1, 1, 1] for ts in range(since, min(since + limit * MINUTE, self.now + MINUTE), MINUTE)]


class EndBounded:
    """Bitget-archive-like: bars in [since, since + page bars), at most ``page`` of them,
    from ``listed`` on, whatever limit is asked for."""

    def __init__(self, listed: int, page: int) -> None:
        self.listed, self.page, self.calls = listed, page, 0

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int | None, limit: int) -> list[list[Any]]:
        self.calls += 1
        start = max(since, self.listed)
        return [[ts, 1, 1, 1, 1, 1] for ts in range(start, since + self.page * MINUTE, MINUTE)]


def oldest(client: Any, limit: int) -> int | None:
    return asyncio.run(Prober(client, "X/Y", "1m", MINUTE).oldest_bar(FLOOR_MS, NOW, limit))


def test_a_refused_old_since_is_found_to_the_bar_even_when_the_edge_moves():
    still = RefusingOldSince(keep=10_000, move_after=10**6)
    assert oldest(still, 1000) == NOW - 9_999 * MINUTE
    # The clock moves early in the search, or just before its last page.
    for move_after in (5, still.calls - 1):
        client = RefusingOldSince(keep=10_000, move_after=move_after)
        found = oldest(client, 1000)
        assert found == client.now - 9_999 * MINUTE, move_after
        assert client.calls <= MAX_BISECT_REQUESTS + 2


def test_an_end_bounded_archive_with_small_pages_gives_the_listing():
    listed = NOW - 3 * 365 * 1440 * MINUTE + 17 * MINUTE
    client = EndBounded(listed, page=200)
    assert oldest(client, 1000) == listed
    assert client.calls <= MAX_BISECT_REQUESTS
