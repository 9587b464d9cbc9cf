"""HISTORY pagination over a mocked ccxt exchange."""

from __future__ import annotations

import asyncio

from core.series import Candle, SeriesKey
from tests.mock_exchange import MINUTE, candle, client_for, mock_exchange
from worker.backfill import backfill_series

START = 1_700_000_040_000  # on the 1m grid
SERIES = SeriesKey("mockex", "BTC/USDT", "1m")


def paginated(history: list[list], *, page_size: int, boundary_duplicate: bool = True):
    """An exchange that serves ``since``-based pages; each page repeats the previous page's last bar."""
    calls = []

    def fetch(symbol, timeframe, since=None, limit=None):
        calls.append((since, limit))
        size = min(limit or page_size, page_size)
        start = since - MINUTE if boundary_duplicate and since and since > history[0][0] else since
        return [c for c in history if c[0] >= start][:size]
    return fetch, calls


def backfill(exchange, now_ms: int, start: int, end: int, page_limit: int = 1000, concurrency: int = 1):
    emitted: list[Candle] = []

    async def emit(series, candles):
        emitted.extend(candles)

    async def go():
        client = client_for(exchange, clock=lambda: now_ms / 1000)
        await client.open()
        return await backfill_series(client, SERIES, start, end, page_limit=page_limit, emit=emit,
                                     concurrency=concurrency)
    return asyncio.run(go()), emitted


def test_history_loop() -> None:
    """Pages with a duplicate at each seam and a short last page are stitched into exactly the range."""
    history = [candle(START + k * MINUTE, 100 + k) for k in range(250)]
    fetch, calls = paginated(history, page_size=100)
    now = START + 250 * MINUTE + 30_000  # bar 250 would be open; 0..249 are closed
    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START, START + 250 * MINUTE, page_limit=100)

    assert [c.timestamp for c in emitted] == [START + k * MINUTE for k in range(250)]
    assert [c.open for c in emitted] == [100 + k for k in range(250)]
    assert [since for since, _ in calls] == [START, START + 100 * MINUTE, START + 199 * MINUTE,
                                              START + 250 * MINUTE][: len(calls)]
    assert all(limit == 100 for _, limit in calls)
    assert outcome.status == "complete" and outcome.candles == 250
    assert outcome.covered_until == START + 250 * MINUTE


def test_range_end_is_exclusive_and_open_bars_are_not_written() -> None:
    history = [candle(START + k * MINUTE) for k in range(30)]
    fetch, _ = paginated(history, page_size=1000)
    now = START + 20 * MINUTE + 1_000  # bar 20 is open
    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START + 5 * MINUTE, START + 40 * MINUTE)
    assert [c.timestamp for c in emitted] == [START + k * MINUTE for k in range(5, 20)]
    outcome2, emitted2 = backfill(exchange, now, START, START + 10 * MINUTE)
    assert len(emitted2) == 10 and outcome2.status == "complete"


def test_no_trade_gaps_are_not_invented() -> None:
    history = [candle(START + k * MINUTE) for k in range(40) if k not in (3, 4, 17)]
    fetch, _ = paginated(history, page_size=10)
    now = START + 60 * MINUTE
    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START, START + 40 * MINUTE, page_limit=10)
    assert len(emitted) == 37 and outcome.status == "complete"


def test_truncated_history_is_reported_as_unavailable_not_covered() -> None:
    """Kraken serves only its most recent 720 candles, whatever ``since`` says."""
    now = START + 2000 * MINUTE + 10_000
    recent = [candle(START + k * MINUTE) for k in range(2000 - 719, 2001)]
    calls = []

    def kraken(symbol, timeframe, since=None, limit=None):
        calls.append(since)
        return [c for c in recent if since is None or c[0] >= since][-720:]

    exchange = mock_exchange(ohlcv=kraken, server_time_ms=lambda: now, ohlcv_limit=720)
    outcome, emitted = backfill(exchange, now, START, START + 2000 * MINUTE)
    first_served = START + 1281 * MINUTE
    assert outcome.unavailable == [(START, first_served)]
    assert outcome.status == "partial_unavailable"
    assert [c.timestamp for c in emitted] == [START + k * MINUTE for k in range(1281, 2000)]
    assert len(calls) <= 2  # no loop asking the same page again

    # a range entirely before the served window: all of it unavailable, nothing written
    outcome, emitted = backfill(exchange, now, START, START + 100 * MINUTE)
    assert outcome.unavailable == [(START, START + 100 * MINUTE)] and emitted == []


def test_a_recent_window_with_quiet_minutes_is_still_reported_as_truncated() -> None:
    """Kraken's newest 720 minutes hold fewer than 720 bars when some had no trade. When the
    last minutes before now are quiet too, the page looks cut short from the front; it is the
    recent window all the same, and what lies before it stays unavailable."""
    now = START + 2000 * MINUTE + 10_000
    quiet = {1300, 1301, 1500, 1650, 1997, 1998, 1999, 2000}   # the newest minutes among them
    recent = [candle(START + k * MINUTE) for k in range(2000 - 719, 2001) if k not in quiet]

    def kraken(symbol, timeframe, since=None, limit=None):
        return [c for c in recent if since is None or c[0] >= since][-720:]

    exchange = mock_exchange(ohlcv=kraken, server_time_ms=lambda: now, ohlcv_limit=720)
    end = START + 1928 * MINUTE                                  # the range ends 72 minutes back
    outcome, emitted = backfill(exchange, now, START, end)
    first_served = START + 1281 * MINUTE
    assert outcome.unavailable == [(START, first_served)]
    assert outcome.status == "partial_unavailable"
    assert [c.timestamp for c in emitted] == [START + k * MINUTE for k in range(1281, 1928) if k not in quiet]


def test_page_limit_is_capped_by_the_exchange_maximum() -> None:
    history = [candle(START + k * MINUTE) for k in range(10)]
    fetch, calls = paginated(history, page_size=1000)
    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: START + 20 * MINUTE, ohlcv_limit=300)
    backfill(exchange, START + 20 * MINUTE, START, START + 10 * MINUTE, page_limit=1000)
    assert calls[0][1] == 300


def test_an_exchange_that_ignores_since_does_not_loop_forever() -> None:
    page = [candle(START + k * MINUTE) for k in range(5)]
    exchange = mock_exchange(ohlcv=lambda *a: page, server_time_ms=lambda: START + 100 * MINUTE)
    outcome, emitted = backfill(exchange, START + 100 * MINUTE, START, START + 50 * MINUTE)
    assert len(emitted) == 5 and exchange.fetch_ohlcv.await_count == 2


def test_exchange_failure_ends_the_series_with_an_error_and_where_it_stood() -> None:
    import ccxt

    history = [candle(START + k * MINUTE) for k in range(20)]
    fetch, _ = paginated(history, page_size=10, boundary_duplicate=False)
    answers = iter([fetch("BTC/USDT", "1m", START, 10)] + [ccxt.BadRequest("nope")] * 10)

    def flaky(*args):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer
    exchange = mock_exchange(ohlcv=flaky, server_time_ms=lambda: START + 60 * MINUTE)
    outcome, emitted = backfill(exchange, START + 60 * MINUTE, START, START + 20 * MINUTE, page_limit=10)
    assert outcome.status == "failed" and "nope" in outcome.error
    assert len(emitted) == 10 and outcome.covered_until == START + 10 * MINUTE


def test_an_interrupted_run_resumes_from_its_checkpoint_with_an_identical_result(tmp_path) -> None:
    """Killed halfway and run again: fewer requests than a full run, the same rows."""
    from core.config import ExchangeConfig, Settings
    from worker.checkpoint import HistoryCheckpoint
    from worker.history import HistoryRun
    from worker.session import ExchangeSession
    from worker.sinks.sqlite import SqliteSink

    history = [candle(START + k * MINUTE, 100 + k) for k in range(1000)]
    now = START + 1000 * MINUTE + 1
    config = ExchangeConfig(symbols=[{"symbol": "BTC/USDT", "timeframes": ["1m"]}])

    def run(db: str, stop_after_pages: int | None):
        fetch, calls = paginated(history, page_size=100, boundary_duplicate=False)
        worker_box = {}

        def counting_fetch(*args):
            if stop_after_pages is not None and len(calls) + 1 >= stop_after_pages:
                worker_box["w"].request_stop()  # the shutdown signal arrives mid-run
            return fetch(*args)
        exchange = mock_exchange(ohlcv=counting_fetch, server_time_ms=lambda: now)
        sink = SqliteSink(tmp_path / db)
        session = ExchangeSession("mockex", config, Settings(history_page_limit=100, history_flush_rows=100), sink,
                                  client=client_for(exchange, clock=lambda: now / 1000), clock=lambda: now / 1000)
        worker_box["w"] = session
        checkpoint = HistoryCheckpoint.for_range(tmp_path / "state", "mockex",
                                                 START, START + 1000 * MINUTE, store_identity=db)

        async def go():
            await session.open()
            return await HistoryRun(session, checkpoint).run(START, START + 1000 * MINUTE)
        report = asyncio.run(go())
        rows = sink._connection().execute(
            "SELECT timestamp, open, high, low, close, volume FROM market_data_ohlcv ORDER BY 1").fetchall()
        return report, len(calls), rows

    _, full_requests, full_rows = run("full.sqlite", None)
    first, first_requests, _ = run("resumed.sqlite", stop_after_pages=5)
    assert not first.ok and first_requests < full_requests
    second, second_requests, resumed_rows = run("resumed.sqlite", None)
    assert second.ok
    assert second_requests < full_requests and first_requests + second_requests <= full_requests + 1
    assert resumed_rows == full_rows and len(full_rows) == 1000
    third, third_requests, rerun_rows = run("resumed.sqlite", None)
    assert third_requests == 0 and rerun_rows == full_rows  # a finished range is not fetched again

    SqliteSink(tmp_path / "resumed.sqlite")._connection().execute("DELETE FROM market_data_ohlcv")
    _, lost_requests, refetched_rows = run("resumed.sqlite", None)
    assert lost_requests == full_requests and refetched_rows == full_rows  # the store, not the file, decides


def test_pages_of_one_series_are_fetched_concurrently_when_the_exchange_serves_exact_pages() -> None:
    history = [candle(START + k * MINUTE, 100 + k) for k in range(1000) if k not in (250, 251, 600)]
    fetch, calls = paginated(history, page_size=100, boundary_duplicate=False)
    in_flight, peak = [0], [0]

    async def slow_fetch(*args):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.001)
        in_flight[0] -= 1
        return fetch(*args)
    now = START + 1000 * MINUTE + 1
    exchange = mock_exchange(ohlcv=slow_fetch, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START, START + 1000 * MINUTE, page_limit=100, concurrency=4)
    assert [c.timestamp for c in emitted] == [c[0] for c in history]  # in order, none twice
    assert outcome.status == "complete" and outcome.covered_until == START + 1000 * MINUTE
    assert peak[0] == 4 and len(calls) == 10


def test_windows_with_a_quiet_minute_inside_are_still_fetched_concurrently() -> None:
    """An exchange serving the window [since, since + limit bars) (Bybit with its end bound): a
    page from ``since`` to the window's last bar is exact, even one bar short of ``limit``."""
    history = [candle(START + k * MINUTE, 100 + k) for k in range(1000) if k % 100 != 50]
    calls = []
    in_flight, peak = [0], [0]

    async def windowed(symbol, timeframe, since=None, limit=None):
        calls.append(since)
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.001)
        in_flight[0] -= 1
        return [c for c in history if since <= c[0] < since + limit * MINUTE]
    now = START + 1000 * MINUTE + 1
    exchange = mock_exchange(ohlcv=windowed, server_time_ms=lambda: now)
    outcome, emitted = backfill(exchange, now, START, START + 1000 * MINUTE, page_limit=100, concurrency=4)
    assert [c.timestamp for c in emitted] == [c[0] for c in history]
    assert outcome.status == "complete" and outcome.covered_until == START + 1000 * MINUTE
    assert peak[0] == 4 and len(calls) == 10
