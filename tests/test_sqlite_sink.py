"""The embedded SQLite store: upserts (latest wins), watermarks, several writer processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from core.series import OhlcvRow, SeriesKey
from worker.sinks.sqlite import SqliteSink

TS = 1_700_000_040_000
MINUTE = 60_000


def rows(exchange: str, n: int, close: float, ingested_at: int) -> list[OhlcvRow]:
    return [OhlcvRow(TS + k * MINUTE, exchange, "BTC/USDT", "1m", 1.0, max(2.0, close), 0.5, close,
                     3.0, ingested_at) for k in range(n)]


def test_upsert_latest_write_wins_and_timestamps_are_iso_utc(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "md.sqlite")
    sink.ensure()
    sink.ensure()  # idempotent
    sink.write(rows("binance", 3, close=1.5, ingested_at=TS))
    sink.write(rows("binance", 2, close=1.75, ingested_at=TS + 5000))
    got = sink._connection().execute(
        "SELECT timestamp, close, ingested_at FROM market_data_ohlcv ORDER BY timestamp").fetchall()
    assert got == [("2023-11-14T22:14:00.000Z", 1.75, "2023-11-14T22:14:05.000Z"),
                   ("2023-11-14T22:15:00.000Z", 1.75, "2023-11-14T22:14:05.000Z"),
                   ("2023-11-14T22:16:00.000Z", 1.5, "2023-11-14T22:14:00.000Z")]
    latest = sink._connection().execute("SELECT COUNT(*) FROM market_data_ohlcv_latest").fetchone()
    assert latest == (3,)
    assert sink._connection().execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_watermarks_in_one_query(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "md.sqlite")
    sink.ensure()
    sink.write(rows("binance", 5, 1.5, TS))
    wanted = [SeriesKey("binance", "BTC/USDT", "1m"), SeriesKey("binance", "ETH/USDT", "1m")]
    assert sink.last_timestamps(wanted) == {wanted[0]: TS + 4 * MINUTE}


def _writer(path: str, exchange: str, close: float, rounds: int) -> None:
    sink = SqliteSink(path)
    sink.ensure()
    for r in range(rounds):
        sink.write(rows(exchange, 200, close + r, ingested_at=TS + r))
        sink.write(rows("shared", 50, close + r, ingested_at=TS + r))


def test_two_writer_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "md.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, name, close, 20))
             for name, close in (("binance", 10.0, ), ("kraken", 50.0))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    conn = sqlite3.connect(path)
    counts = dict(conn.execute("SELECT exchange, COUNT(*) FROM market_data_ohlcv GROUP BY exchange"))
    assert counts == {"binance": 200, "kraken": 200, "shared": 50}
    # the shared series holds exactly one row per bar, from whichever writer came last
    closes = {c for (c,) in conn.execute("SELECT close FROM market_data_ohlcv WHERE exchange='shared'")}
    assert closes <= {10.0 + 19, 50.0 + 19} and len(closes) == 1
    assert conn.execute("SELECT MAX(close) FROM market_data_ohlcv WHERE exchange='binance'").fetchone() == (29.0,)


def _open_new_file(path: str, start_together: Any, outcomes: Any) -> None:
    start_together.wait()
    try:
        SqliteSink(path).ensure()
        outcomes.put("ok")
    except Exception as exc:  # reported to the test, which names it
        outcomes.put(repr(exc))


def test_workers_opening_a_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    """Workers that start together open the default store's new file together. (Found
    failing: SQLite refused the switch to WAL at once with "database is locked" in about
    one start in ten of four workers, and that worker's start failed.)"""
    ctx = multiprocessing.get_context("fork")  # cheap enough to try the race many times
    failures = []
    for trial in range(60):
        start_together, outcomes = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_new_file, args=(str(tmp_path / f"md-{trial}.sqlite"),
                                                           start_together, outcomes))
                 for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures += [o for o in (outcomes.get(timeout=5) for _ in procs) if o != "ok"]
    assert failures == []
