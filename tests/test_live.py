"""LIVE: previous vs current bar on the exchange's clock, the write policy, resilience."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.config import ExchangeConfig, Settings
from core.series import Candle, SeriesKey
from tests.mock_exchange import MINUTE, candle, client_for, mock_exchange
from worker.live import LiveCollector
from worker.live_bars import LiveWritePolicy, classify_live_bars, live_fetch_limit
from worker.session import ExchangeSession
from worker.sinks.sqlite import SqliteSink

T0 = 1_700_000_040_000  # a 1m bar boundary


def run(coro):
    return asyncio.run(coro)


def make_worker(tmp_path: Path, exchange, clock, *, interval: int = 60,
                symbols=(("BTC/USDT", ["1m"]),)) -> LiveCollector:
    config = ExchangeConfig(symbols=[{"symbol": s, "timeframes": tfs} for s, tfs in symbols])
    sink = SqliteSink(tmp_path / "md.sqlite")
    return LiveCollector(ExchangeSession("mockex", config, Settings(update_interval_seconds=interval), sink,
                                         client=client_for(exchange, clock=clock), clock=clock))


def stored(worker: LiveCollector) -> list[tuple]:
    conn = worker.session.sink._connection()
    return conn.execute("SELECT timestamp, open, high, low, close, volume FROM market_data_ohlcv "
                        "ORDER BY timestamp").fetchall()


def test_fetch_ohlcv_live(tmp_path: Path) -> None:
    """The mocked ccxt answer becomes a closed previous bar and an open current bar."""
    local_now = (T0 + 30_000) / 1000
    previous = [T0 - MINUTE, 100.0, 105.0, 99.0, 104.0, 12.5]   # closed: final values
    current = [T0, 104.0, 106.0, 103.5, 105.5, 3.25]             # open: last price as close
    exchange = mock_exchange(ohlcv=[previous, current], server_time_ms=lambda: T0 + 30_000)
    worker = make_worker(tmp_path, exchange, lambda: local_now)

    async def scenario():
        await worker.session.open()
        await worker.cycle()
    run(scenario())

    args = exchange.fetch_ohlcv.await_args.args
    assert args[:2] == ("BTC/USDT", "1m") and args[3] == 2  # the last two bars
    bars = classify_live_bars([Candle(*previous), Candle(*current)], "1m", T0 + 30_000)
    assert bars.previous == Candle(*previous) and bars.current == Candle(*current)
    rows = stored(worker)
    assert rows == [("2023-11-14T22:13:00.000Z", 100.0, 105.0, 99.0, 104.0, 12.5),
                    ("2023-11-14T22:14:00.000Z", 104.0, 106.0, 103.5, 105.5, 3.25)]
    assert worker.stats.rows_written == 2 and worker.stats.rows_rejected == 0


@pytest.mark.parametrize("offset_ms, expect_current", [(-1, T0 - MINUTE), (0, T0), (1, T0)])
def test_exchange_clock_decides_at_the_bar_boundary(offset_ms: int, expect_current: int) -> None:
    candles = [Candle(T0 - 2 * MINUTE, 1, 1, 1, 1, 1), Candle(T0 - MINUTE, 1, 1, 1, 1, 1),
               Candle(T0, 1, 1, 1, 1, 1)]
    bars = classify_live_bars(candles, "1m", T0 + offset_ms)
    assert bars.current.timestamp == expect_current
    assert bars.previous.timestamp == expect_current - MINUTE
    # a bar our clock would call open is not yet in the answer when the exchange's clock lags
    assert all(c.timestamp < expect_current for c in bars.closed)


def test_exchange_clock_offset_is_used_not_the_local_clock(tmp_path: Path) -> None:
    """Our clock says the T0 bar is open; the exchange's clock (2 s behind) says it is not open yet."""
    local_now = (T0 + 1_000) / 1000
    exchange = mock_exchange(ohlcv=[candle(T0 - 2 * MINUTE), candle(T0 - MINUTE)],
                             server_time_ms=lambda: T0 - 1_000)
    worker = make_worker(tmp_path, exchange, lambda: local_now)

    async def scenario():
        await worker.session.open()
        return await worker.session.client.exchange_now_ms(), classify_live_bars(
            [Candle(*c) for c in exchange.fetch_ohlcv.return_value], "1m",
            await worker.session.client.exchange_now_ms())
    now_ms, bars = run(scenario())
    assert now_ms == T0 - 1_000
    assert bars.current.timestamp == T0 - MINUTE  # still open on the exchange
    assert bars.previous.timestamp == T0 - 2 * MINUTE


def test_only_closed_bars_more_bars_or_none() -> None:
    closed_only = [Candle(T0 - 2 * MINUTE, 1, 1, 1, 1, 1), Candle(T0 - MINUTE, 1, 1, 1, 1, 1)]
    bars = classify_live_bars(closed_only, "1m", T0 + 5_000)
    assert bars.current is None and bars.previous.timestamp == T0 - MINUTE
    many = [Candle(T0 - k * MINUTE, 1, 1, 1, 1, 1) for k in range(10, -2, -1)]
    bars = classify_live_bars(many, "1m", T0 + 5_000)  # includes one bar in the future
    assert bars.current.timestamp == T0 and bars.previous.timestamp == T0 - MINUTE
    assert classify_live_bars([], "1m", T0) .previous is None


def test_fetch_limit_covers_the_interval() -> None:
    assert live_fetch_limit("1m", 60) == 2
    assert live_fetch_limit("1h", 60) == 2
    assert live_fetch_limit("1m", 300) == 6


def test_write_policy_writes_a_closed_bar_once_unless_it_changes() -> None:
    policy, series = LiveWritePolicy(), SeriesKey("x", "BTC/USDT", "1m")
    prev, cur = Candle(T0 - MINUTE, 1, 2, 1, 2, 1), Candle(T0, 2, 3, 2, 3, 1)
    bars = classify_live_bars([prev, cur], "1m", T0 + 1)
    assert policy.select(series, bars) == [prev, cur]
    policy.written(series, bars)
    assert policy.select(series, bars) == [cur]
    corrected = Candle(T0 - MINUTE, 1, 2, 1, 2, 9)
    assert policy.select(series, classify_live_bars([corrected, cur], "1m", T0 + 1)) == [corrected, cur]


def test_closed_bar_gets_its_final_values_and_open_bar_updates(tmp_path: Path) -> None:
    clock = {"now": (T0 + 10_000) / 1000}
    answers = {
        T0 + 10_000: [[T0 - MINUTE, 10, 12, 9, 11, 5], [T0, 11, 11.5, 10.5, 11.2, 1]],
        T0 + 50_000: [[T0 - MINUTE, 10, 12, 9, 11, 5], [T0, 11, 13, 10.5, 12.8, 4]],
        T0 + 70_000: [[T0, 11, 13.5, 10.5, 13.1, 6], [T0 + MINUTE, 13.1, 13.2, 13.0, 13.0, 1]],
    }
    exchange = mock_exchange(ohlcv=lambda *a: answers[int(clock["now"] * 1000)],
                             server_time_ms=lambda: int(clock["now"] * 1000))
    worker = make_worker(tmp_path, exchange, lambda: clock["now"])

    async def scenario():
        await worker.session.open()
        for now in answers:
            clock["now"] = now / 1000
            await worker.cycle()
    run(scenario())
    rows = {r[0]: r[1:] for r in stored(worker)}
    assert rows["2023-11-14T22:14:00.000Z"] == (11.0, 13.5, 10.5, 13.1, 6.0)  # final, not partial
    assert rows["2023-11-14T22:15:00.000Z"] == (13.1, 13.2, 13.0, 13.0, 1.0)
    assert worker.stats.rows_written == 2 + 1 + 2


def test_a_failing_exchange_never_escapes_a_cycle(tmp_path: Path) -> None:
    import ccxt

    exchange = mock_exchange(ohlcv=ccxt.ExchangeNotAvailable("503"), server_time_ms=lambda: T0)
    worker = make_worker(tmp_path, exchange, lambda: T0 / 1000)

    async def scenario():
        await worker.session.open()
        await worker.cycle()
    run(scenario())
    assert worker.stats.cycle_errors == 1 and worker.stats.cycles == 1
    assert set(worker._needs_repair) == {SeriesKey("mockex", "BTC/USDT", "1m")}


def test_unsupported_series_are_skipped_and_the_rest_collected(tmp_path: Path) -> None:
    exchange = mock_exchange(symbols=("BTC/USDT",), timeframes=("1m",),
                             ohlcv=[candle(T0 - MINUTE), candle(T0)], server_time_ms=lambda: T0 + 1)
    worker = make_worker(tmp_path, exchange, lambda: (T0 + 1) / 1000,
                         symbols=(("BTC/USDT", ["1m", "3m"]), ("DOGE/USDT", ["1m"])))
    run(worker.session.open())
    assert worker.session.series == [SeriesKey("mockex", "BTC/USDT", "1m")]
    reasons = {str(s): r for s, r in worker.session.skipped}
    assert "does not offer timeframe 3m" in reasons["mockex:BTC/USDT:3m"]
    assert "does not list symbol DOGE/USDT" in reasons["mockex:DOGE/USDT:1m"]


def test_restart_repairs_the_gap_from_the_last_stored_bar(tmp_path: Path) -> None:
    """Bars missed while the worker was down are fetched from the last stored one (inclusive)."""
    now = T0 + 10 * MINUTE + 5_000
    history = [candle(T0 + k * MINUTE, 100 + k) for k in range(11)]

    def fetch(symbol, tf, since=None, limit=None):
        return [c for c in history if since is None or c[0] >= since][: limit or 1000]

    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: now)
    worker = make_worker(tmp_path, exchange, lambda: now / 1000)
    sink = worker.session.sink
    sink.ensure()
    from core.series import to_rows
    sink.write(to_rows(SeriesKey("mockex", "BTC/USDT", "1m"),
                       [Candle(T0, 1, 1, 1, 1, 1)], 0))  # stored while still open

    async def scenario():
        await worker.session.open()
        await worker.resume_from_store()
    run(scenario())
    rows = stored(worker)
    assert len(rows) == 10  # T0 .. T0+9m closed; T0+10m is still open
    assert rows[0][1] == 100.0  # the bar stored while open was rewritten with final values
    assert exchange.fetch_ohlcv.await_args_list[0].args[2] == T0


def test_a_gap_is_repaired_even_when_newer_bars_were_stored_after_it(tmp_path: Path) -> None:
    """The exchange comes back for the LIVE fetch before the repair of the same cycle succeeds:
    the store's newest bar then lies past the gap, which must still be filled."""
    import ccxt

    clock = {"now": (T0 + 5_000) / 1000}
    history = {T0 + k * MINUTE: candle(T0 + k * MINUTE, 100 + k) for k in range(-1, 12)}
    mode = {"down": False, "repairs_down": False}

    def fetch(symbol, tf, since=None, limit=None):
        now = int(clock["now"] * 1000)
        if mode["down"] or (since is not None and mode["repairs_down"]):
            raise ccxt.ExchangeNotAvailable("503")
        bars = [c for ts, c in sorted(history.items()) if ts <= now and (since is None or ts >= since)]
        return bars[-(limit or 2):] if since is None else bars[:limit]

    exchange = mock_exchange(ohlcv=fetch, server_time_ms=lambda: int(clock["now"] * 1000))
    worker = make_worker(tmp_path, exchange, lambda: clock["now"])

    async def scenario():
        await worker.session.open()
        await worker.cycle()                      # stores T-1 (closed) and T (open)
        mode["down"] = True
        for k in (1, 2, 3):
            clock["now"] = (T0 + k * MINUTE + 5_000) / 1000
            await worker.cycle()                  # the exchange is down
        mode.update(down=False, repairs_down=True)
        clock["now"] = (T0 + 4 * MINUTE + 5_000) / 1000
        await worker.cycle()                      # repair fails, the LIVE fetch works
        mode["repairs_down"] = False
        clock["now"] = (T0 + 5 * MINUTE + 5_000) / 1000
        await worker.cycle()                      # now the repair can work
    run(scenario())
    stored_ts = [r[0] for r in stored(worker)]
    assert stored_ts == [f"2023-11-14T22:{13 + k:02d}:00.000Z" for k in range(7)]  # T-1 .. T+5, no gap
