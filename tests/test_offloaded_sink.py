"""The sink that writes from a process of its own (HISTORY, audit), over a real SQLite file."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import psutil
import pytest

from core.config import StorageConfig
from core.row_batch import RowBatch
from core.series import Candle, FundingRow, OhlcvRow, SeriesKey
from worker.errors import CollectorError, SinkRejected, SinkUnavailable
from worker.sinks.base import WriteResult
from worker.sinks.offloaded import CHUNK_ROWS, OffloadedSink
from worker.sinks.sqlite import SqliteSink

TS = 1_700_000_040_000  # on the 1m grid
MINUTE = 60_000
BTC = SeriesKey("binance", "BTC/USDT", "1m")
ETH = SeriesKey("binance", "ETH/USDT", "1m")
NEVER_WRITTEN = SeriesKey("binance", "XRP/USDT", "1m")
# Generous bound for anything that waits on the writer process; it only stops a hang.
HANG_GUARD_S = 60


def rows(series: SeriesKey, first: int, count: int, ingested_at: int = TS) -> list[OhlcvRow]:
    return [OhlcvRow(TS + k * MINUTE, *series, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k,
                     1.0 + k, ingested_at) for k in range(first, first + count)]


def storage(path: Path) -> StorageConfig:
    return StorageConfig(backend="sqlite", sqlite={"path": str(path)})


def our_child_pids() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


@pytest.fixture
def make_offloaded() -> Callable[[Path], OffloadedSink]:
    """OffloadedSinks for a test; each is closed afterwards, so no writer outlives the test."""
    made: list[OffloadedSink] = []

    def make(path: Path) -> OffloadedSink:
        sink = OffloadedSink(storage(path), bulk=True)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


@pytest.fixture
def local_sinks() -> Callable[[Path], SqliteSink]:
    made: list[SqliteSink] = []

    def make(path: Path) -> SqliteSink:
        sink = SqliteSink(path)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def test_round_trip_in_chunks_matches_an_in_process_reader(tmp_path: Path, make_offloaded,
                                                            local_sinks) -> None:
    path = tmp_path / "md.sqlite"
    sink = make_offloaded(path)
    btc, eth = rows(BTC, 0, 5_000), rows(ETH, 0, 300)
    assert len(btc) > 2 * CHUNK_ROWS  # several messages on the pipe

    sink.ensure()
    sink.ensure()  # idempotent, like the store's own ensure
    result = sink.write(btc + eth)
    assert result == WriteResult(written=5_300, rejected=[])
    result = sink.write(rows(BTC, 4_990, 20))  # 10 rewritten, 10 new
    assert result == WriteResult(written=20, rejected=[])

    wanted = [BTC, ETH, NEVER_WRITTEN]
    last = sink.last_timestamps(wanted)
    assert last == {BTC: TS + 5_009 * MINUTE, ETH: TS + 299 * MINUTE}
    assert all(type(key) is SeriesKey for key in last)
    stored = sink.stored_timestamps(BTC, TS + 100 * MINUTE, TS + 4_100 * MINUTE)
    assert stored == [TS + k * MINUTE for k in range(100, 4_100)]
    assert sink.stored_timestamps(NEVER_WRITTEN, TS, TS + 10 * MINUTE) == []

    local = local_sinks(path)
    assert local.last_timestamps(wanted) == last
    assert local.stored_timestamps(BTC, TS + 100 * MINUTE, TS + 4_100 * MINUTE) == stored
    assert local.stored_timestamps(ETH, TS, TS + 1_000 * MINUTE) == [r.timestamp for r in eth]
    got = local._connection().execute(
        "SELECT COUNT(*), MIN(open), MAX(volume) FROM market_data_ohlcv WHERE symbol = 'BTC/USDT'"
    ).fetchone()
    assert got == (5_010, 100.0, 5_010.0)

    process = sink._process
    assert process is not None and process.is_alive()
    pid = process.pid
    sink.close()
    assert sink._process is None
    assert process.exitcode is not None  # it exited and was joined
    assert multiprocessing.active_children() == []
    assert pid not in our_child_pids()
    sink.close()  # closing twice is harmless


def test_a_batch_of_candle_pages_and_rows_is_stored_as_in_process(tmp_path: Path, make_offloaded,
                                                                   local_sinks) -> None:
    """Pages cross the pipe as columns, other rows as tuples; the file ends up the same."""
    funding = [FundingRow(TS, "binance", "BTC/USDT:USDT", 0.0001, TS)]
    batch = RowBatch()
    for first in range(0, 3_000, 1_000):
        batch.add_candles(BTC, [Candle(*row[:1], *row[4:9]) for row in rows(BTC, first, 1_000)], TS + first)
    batch.add_rows(funding + rows(ETH, 0, CHUNK_ROWS + 5))
    batch.add_candles(BTC, [Candle(TS, 1.0, 2.0, 0.5, 1.5, 7.0)], TS + 9)   # rewrites the first bar
    offloaded, local = make_offloaded(tmp_path / "offloaded.sqlite"), local_sinks(tmp_path / "local.sqlite")
    for sink in (offloaded, local):
        sink.ensure()
        assert sink.write(batch) == WriteResult(written=3_000 + 1 + CHUNK_ROWS + 5 + 1)
    dumps = ["SELECT * FROM market_data_ohlcv ORDER BY symbol, timestamp",
             "SELECT * FROM market_data_funding_rates"]
    stored = [[local._connection().execute(q).fetchall() for q in dumps]]
    offloaded.close()
    with sqlite3.connect(tmp_path / "offloaded.sqlite") as conn:
        stored.append([conn.execute(q).fetchall() for q in dumps])
    assert stored[0] == stored[1]
    assert len(stored[0][0]) == 3_000 + CHUNK_ROWS + 5 and stored[0][0][0][8] == 7.0


def test_the_writer_is_another_process(tmp_path: Path, make_offloaded) -> None:
    sink = make_offloaded(tmp_path / "md.sqlite")
    assert sink._process is None  # nothing starts before the first call
    sink.ensure()
    pid = sink._process.pid
    assert pid != os.getpid()
    assert pid in our_child_pids()
    assert psutil.Process(pid).ppid() == os.getpid()
    sink.write(rows(BTC, 0, 3))
    assert sink._process.pid == pid  # one writer serves call after call


def path_is_a_directory(tmp_path: Path) -> Path:
    path = tmp_path / "md.sqlite"
    path.mkdir()
    return path


def path_is_not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "md.sqlite"
    path.write_bytes(b"this is not a database file " * 200)
    return path


def parent_is_a_regular_file(tmp_path: Path) -> Path:
    parent = tmp_path / "not-a-dir"
    parent.write_text("a regular file")
    return parent / "md.sqlite"


@pytest.mark.parametrize("bad_path, store_error", [
    (path_is_a_directory, SinkUnavailable),
    (path_is_not_a_database, SinkRejected),
])
def test_store_errors_cross_the_pipe_as_the_workers_own(tmp_path: Path, make_offloaded, local_sinks,
                                                        bad_path, store_error) -> None:
    path = bad_path(tmp_path)
    with pytest.raises(CollectorError) as in_process:
        local_sinks(path).ensure()
    assert type(in_process.value) is store_error

    sink = make_offloaded(path)
    with pytest.raises(CollectorError) as offloaded:
        sink.ensure()
    assert type(offloaded.value) is store_error
    assert str(offloaded.value) == str(in_process.value)
    # The store's error ends the call, not the writer.
    assert sink._process is not None and sink._process.is_alive()
    with pytest.raises(store_error):
        sink.ensure()


def test_a_parent_that_is_a_file_raises_the_same_error_as_in_process(tmp_path: Path, make_offloaded,
                                                                     local_sinks) -> None:
    path = parent_is_a_regular_file(tmp_path)
    with pytest.raises(Exception) as in_process:
        local_sinks(path).ensure()
    sink = make_offloaded(path)
    with pytest.raises(Exception) as offloaded:
        sink.ensure()
    assert type(offloaded.value) is type(in_process.value)
    assert str(offloaded.value) == str(in_process.value)


def test_a_parent_that_is_a_file_is_a_store_error(tmp_path: Path, local_sinks, make_offloaded) -> None:
    path = parent_is_a_regular_file(tmp_path)
    with pytest.raises(SinkUnavailable):
        local_sinks(path).ensure()
    with pytest.raises(SinkUnavailable):
        make_offloaded(path).write(rows(BTC, 0, 3))


def test_a_request_cut_short_does_not_leave_the_pipe_out_of_step(tmp_path: Path, make_offloaded) -> None:
    sink = make_offloaded(tmp_path / "md.sqlite")
    sink.ensure()
    with pytest.raises(TypeError):  # the last row cannot become a tuple: the request stops halfway
        sink.write(rows(BTC, 0, 10) + [None])
    sink.ensure()
    assert sink.write(rows(BTC, 0, 10)).written == 10
    assert sink.last_timestamps([BTC]) == {BTC: TS + 9 * MINUTE}


def test_a_writer_killed_between_calls_is_replaced_and_nothing_stored_is_lost(
        tmp_path: Path, make_offloaded) -> None:
    sink = make_offloaded(tmp_path / "md.sqlite")
    sink.ensure()
    assert sink.write(rows(BTC, 0, 100)).written == 100
    killed = sink._process
    os.kill(killed.pid, signal.SIGKILL)
    killed.join(HANG_GUARD_S)
    assert killed.exitcode == -signal.SIGKILL

    # The next call sees the writer gone before it sends anything, and starts a new one.
    assert sink.last_timestamps([BTC]) == {BTC: TS + 99 * MINUTE}
    assert sink._process is not killed and sink._process.pid != killed.pid
    assert sink.write(rows(BTC, 100, 50)).written == 50
    assert sink.stored_timestamps(BTC, TS, TS + 1_000 * MINUTE) == [TS + k * MINUTE for k in range(150)]


class SignalsWhenSent(list):
    """Rows that set ``sending`` once the sink slices them into chunks: by then the request
    is past the writer-alive check and on the pipe."""

    def __init__(self, items, sending: threading.Event) -> None:
        super().__init__(items)
        self._sending = sending

    def __getitem__(self, index):
        if isinstance(index, slice):
            self._sending.set()
        return super().__getitem__(index)


def test_a_writer_killed_during_a_call_raises_sink_unavailable_and_the_next_call_recovers(
        tmp_path: Path, make_offloaded) -> None:
    path = tmp_path / "md.sqlite"
    sink = make_offloaded(path)
    sink.ensure()
    assert sink.write(rows(BTC, 0, 100)).written == 100
    writer = sink._process

    # Hold SQLite's write lock, so the writer's next transaction waits (busy_timeout) and the
    # call stays in flight until the writer is killed.
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    sending = threading.Event()
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(sink.write, SignalsWhenSent(rows(BTC, 100, 10), sending))
            assert sending.wait(HANG_GUARD_S)
            assert not in_flight.done()
            os.kill(writer.pid, signal.SIGKILL)
            with pytest.raises(SinkUnavailable, match="writer process is gone"):
                in_flight.result(timeout=HANG_GUARD_S)
        assert sink._process is None  # the dead writer was reaped
        assert not writer.is_alive()
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()

    # The next call starts a new writer; the rows stored before the kill are still there, the
    # batch in flight was not stored (the worker writes it again on its retry path).
    assert sink.stored_timestamps(BTC, TS, TS + 1_000 * MINUTE) == [TS + k * MINUTE for k in range(100)]
    assert sink._process.pid != writer.pid
    assert sink.write(rows(BTC, 100, 10)).written == 10
    assert sink.last_timestamps([BTC]) == {BTC: TS + 109 * MINUTE}


def test_an_empty_write_starts_no_process(tmp_path: Path, make_offloaded) -> None:
    sink = make_offloaded(tmp_path / "md.sqlite")
    assert sink.write([]) == WriteResult()
    assert sink._process is None
    assert multiprocessing.active_children() == []
    sink.close()  # nothing to close
    assert not (tmp_path / "md.sqlite").exists()
