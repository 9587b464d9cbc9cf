"""HISTORY on exchanges that serve a time window per request (KuCoin, Coinbase, Gate): bars
opening in [since, since + limit bars), with no row for a minute without trades.

A first page that starts at ``since`` and reaches the window's last bar shows the exchange
serves whole windows even when minutes inside had no trade: the rest of the range can be
fetched several windows at a time, like an exchange whose pages are full.
"""

from __future__ import annotations

import asyncio

from tests.mock_exchange import MINUTE, candle, mock_exchange
from tests.test_history import START, backfill

BARS = 1000
QUIET = {k for k in range(BARS) if k % 100 in (37, 38, 71)}     # three quiet minutes in every window


def windowed(history: list[list]):
    calls = []

    def fetch(symbol, timeframe, since=None, limit=None):
        calls.append((since, limit))
        return [c for c in history if since <= c[0] < since + limit * MINUTE]
    return fetch, calls


def test_windows_with_quiet_minutes_inside_are_fetched_concurrently() -> None:
    history = [candle(START + k * MINUTE, 100 + k) for k in range(BARS) if k not in QUIET]
    fetch, calls = windowed(history)
    in_flight, peak = [0], [0]

    async def slow_fetch(*args):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.001)
        in_flight[0] -= 1
        return fetch(*args)
    now = START + BARS * MINUTE + 1
    exchange = mock_exchange(ohlcv=slow_fetch, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START, START + BARS * MINUTE, page_limit=100, concurrency=4)
    assert [c.timestamp for c in emitted] == [c[0] for c in history]  # in order, none twice
    assert outcome.status == "complete" and outcome.covered_until == START + BARS * MINUTE
    assert peak[0] == 4 and len(calls) == 10


def test_a_first_window_ending_in_a_quiet_minute_keeps_paging_one_at_a_time_until_one_is_whole() -> None:
    quiet = QUIET | {99}                                            # the first window's last minute
    history = [candle(START + k * MINUTE, 100 + k) for k in range(BARS) if k not in quiet]
    fetch, calls = windowed(history)
    now = START + BARS * MINUTE + 1
    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START, START + BARS * MINUTE, page_limit=100, concurrency=4)
    assert [c.timestamp for c in emitted] == [c[0] for c in history]
    assert outcome.status == "complete" and len(calls) <= 12
