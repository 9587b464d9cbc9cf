"""HISTORY rows between the backfills and the store: batches, background writes, checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.series import Candle, OhlcvRow, SeriesKey
from worker.checkpoint import HistoryCheckpoint, Mark
from worker.errors import SinkUnavailable
from worker.history_buffer import SINK_BACKOFF, HistoryBuffer

START = 1_700_000_040_000  # on the 1m grid
MINUTE = 60_000
NOW_S = 1_700_100_000.0
BTC = SeriesKey("mockex", "BTC/USDT", "1m")
ETH = SeriesKey("mockex", "ETH/USDT", "1m")


def bars(first: int, count: int) -> list[Candle]:
    """``count`` closed 1m bars starting with bar number ``first``."""
    return [Candle(START + k * MINUTE, 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k, 1.0)
            for k in range(first, first + count)]


def mark_after(bar_number: int) -> Mark:
    """The checkpoint mark once bars up to ``bar_number`` (1m) are stored."""
    last = START + bar_number * MINUTE
    return Mark(last + MINUTE, last)


def timestamps(rows: list[OhlcvRow], series: SeriesKey) -> list[int]:
    return [row.timestamp for row in rows if row.series == series]


def expected(first: int, count: int) -> list[int]:
    return [c.timestamp for c in bars(first, count)]


class FakeStore:
    """An async ``write(rows)``: records each batch, can fail, can be held at a gate.

    ``gate`` (if set) is awaited inside the write, after ``started`` is set: the write is in
    flight until the test opens the gate. ``failures`` is how many of the next attempts raise
    SinkUnavailable. ``in_flight`` / ``max_in_flight`` count overlapping writes.
    """

    def __init__(self, *, failures: int = 0, gated: bool = False) -> None:
        self.batches: list[list[OhlcvRow]] = []
        self.attempts = 0
        self.failures = failures
        self.gate: asyncio.Event | None = asyncio.Event() if gated else None
        self.started = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def rows(self) -> list[OhlcvRow]:
        return [row for batch in self.batches for row in batch]

    async def write(self, rows: list[OhlcvRow]) -> None:
        self.attempts += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.started.set()
            if self.gate is not None:
                await self.gate.wait()
            for _ in range(3):  # give the other tasks every chance to start a second write
                await asyncio.sleep(0)
            if self.failures > 0:
                self.failures -= 1
                raise SinkUnavailable("store down (test)")
            self.batches.append(list(rows))
        finally:
            self.in_flight -= 1


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_buffer(store: FakeStore, flush_rows: int, tmp_path: Path,
                sleep: RecordingSleep | None = None) -> tuple[HistoryBuffer, HistoryCheckpoint]:
    buffer = HistoryBuffer(store.write, flush_rows, clock=lambda: NOW_S,
                           sleep=sleep or RecordingSleep())
    checkpoint = HistoryCheckpoint(tmp_path / "state" / "history.json")
    buffer.resume(checkpoint, checkpoint.load())
    return buffer, checkpoint


def run(coroutine):
    """asyncio.run with a guard: a deadlock fails the test instead of hanging it (the guard is
    far above what any of these tests takes; nothing here asserts on wall-clock time)."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=10))


async def until(condition, max_yields: int = 1000) -> None:
    """Let the event loop run until ``condition()`` holds (no wall-clock waiting)."""
    for _ in range(max_yields):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def let_others_run(times: int = 50) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


def test_rows_go_out_in_batches_and_flush_writes_the_rest(tmp_path: Path) -> None:
    async def go() -> FakeStore:
        store = FakeStore()
        buffer, _ = make_buffer(store, 10, tmp_path)
        await buffer.add(BTC, bars(0, 4))
        await buffer.add(ETH, bars(0, 4))
        await let_others_run()  # a write would have had the chance to start
        assert store.attempts == 0  # 8 rows < 10: nothing written yet
        await buffer.add(BTC, bars(4, 4))  # 12 rows: one batch
        await until(lambda: len(store.batches) == 1)
        await buffer.add(ETH, bars(4, 6))
        await buffer.add(BTC, bars(8, 5))  # 11 rows: the second batch
        await until(lambda: len(store.batches) == 2)
        await buffer.add(ETH, bars(10, 3))  # 3 rows stay buffered
        await let_others_run()
        assert len(store.batches) == 2
        await buffer.flush()
        return store

    store = run(go())
    assert [len(batch) for batch in store.batches] == [12, 11, 3]
    assert timestamps(store.rows, BTC) == expected(0, 13)
    assert timestamps(store.rows, ETH) == expected(0, 13)
    assert len(store.rows) == len(set((r.series, r.timestamp) for r in store.rows)) == 26
    assert all(row.ingested_at == int(NOW_S * 1000) for row in store.rows)
    first = store.rows[0]
    assert first == OhlcvRow(START, "mockex", "BTC/USDT", "1m", 100.0, 101.0, 99.0, 100.5, 1.0,
                             int(NOW_S * 1000))


def test_flush_with_nothing_buffered_writes_nothing(tmp_path: Path) -> None:
    async def go() -> FakeStore:
        store = FakeStore()
        buffer, _ = make_buffer(store, 10, tmp_path)
        await buffer.flush()
        await buffer.flush()
        return store

    assert run(go()).attempts == 0


def test_add_keeps_buffering_while_a_write_is_in_flight(tmp_path: Path) -> None:
    async def go() -> None:
        store = FakeStore(gated=True)
        buffer, _ = make_buffer(store, 10, tmp_path)
        await buffer.add(BTC, bars(0, 10))  # a full batch: its write starts in the background
        await store.started.wait()
        assert store.in_flight == 1 and not store.batches

        # Below the threshold: add() returns at once, the write is still held at the gate.
        await buffer.add(BTC, bars(10, 5))
        await buffer.add(ETH, bars(0, 4))
        assert store.in_flight == 1 and not store.batches and store.attempts == 1

        # Over the threshold with a write in flight: add() waits for that write (one at a time).
        blocked = asyncio.ensure_future(buffer.add(ETH, bars(4, 2)))
        await let_others_run()
        assert not blocked.done() and store.attempts == 1

        store.gate.set()
        await blocked  # the first write finished, the second started
        await buffer.flush()
        assert [len(batch) for batch in store.batches] == [10, 11]
        assert timestamps(store.rows, BTC) == expected(0, 15)
        assert timestamps(store.rows, ETH) == expected(0, 6)
        assert store.max_in_flight == 1

    run(go())


def test_writes_never_overlap_with_series_adding_concurrently(tmp_path: Path) -> None:
    series = [SeriesKey("mockex", f"C{n}/USDT", "1m") for n in range(6)]

    async def go() -> FakeStore:
        store = FakeStore()
        buffer, _ = make_buffer(store, 7, tmp_path)

        async def backfill(key: SeriesKey) -> None:
            for page in range(10):
                await buffer.add(key, bars(page * 3, 3))
                await asyncio.sleep(0)

        await asyncio.gather(*(backfill(key) for key in series))
        await buffer.flush()
        return store

    store = run(go())
    assert store.max_in_flight == 1
    assert len(store.batches) > 3
    assert all(len(batch) >= 7 for batch in store.batches[:-1])
    for key in series:
        assert timestamps(store.rows, key) == expected(0, 30)
    assert len(store.rows) == 6 * 30


def test_marks_move_only_after_their_rows_are_stored(tmp_path: Path) -> None:
    async def go() -> None:
        store = FakeStore(gated=True)
        buffer, checkpoint = make_buffer(store, 10, tmp_path)
        await buffer.add(BTC, bars(0, 6))
        await buffer.add(ETH, bars(0, 4))  # 10 rows: the write starts and is held
        await store.started.wait()
        await buffer.add(BTC, bars(6, 3))  # buffered, not in this write
        assert checkpoint.load() == {}
        assert buffer.durable == {}

        store.gate.set()
        await until(lambda: len(store.batches) == 1 and store.in_flight == 0)
        await until(lambda: checkpoint.load() != {})
        # The first batch is stored: BTC up to bar 5 and ETH up to bar 3, not BTC's bars 6..8.
        assert checkpoint.load() == {BTC: mark_after(5), ETH: mark_after(3)}
        assert buffer.durable == {BTC: mark_after(5), ETH: mark_after(3)}

        await buffer.flush()
        assert checkpoint.load() == {BTC: mark_after(8), ETH: mark_after(3)}
        assert buffer.durable == checkpoint.load()

        # A resumed buffer carries the marks of series it does not touch.
        store2 = FakeStore()
        resumed, checkpoint2 = make_buffer(store2, 10, tmp_path)
        assert resumed.durable == {BTC: mark_after(8), ETH: mark_after(3)}
        await resumed.add(ETH, bars(4, 2))
        await resumed.flush()
        assert checkpoint2.load() == {BTC: mark_after(8), ETH: mark_after(5)}

    run(go())


def test_a_short_store_outage_costs_pauses_not_rows(tmp_path: Path) -> None:
    sleep = RecordingSleep()

    async def go() -> tuple[FakeStore, HistoryCheckpoint]:
        store = FakeStore(failures=2)
        buffer, checkpoint = make_buffer(store, 5, tmp_path, sleep)
        await buffer.add(BTC, bars(0, 5))
        await buffer.add(ETH, bars(0, 2))
        await buffer.flush()
        return store, checkpoint

    store, checkpoint = run(go())
    assert store.attempts == 3 + 1  # the batch: two failures, one success; then the rest
    assert [len(batch) for batch in store.batches] == [5, 2]
    assert timestamps(store.rows, BTC) == expected(0, 5)
    assert timestamps(store.rows, ETH) == expected(0, 2)
    assert len(sleep.delays) == 2
    for attempt, delay in enumerate(sleep.delays, start=1):
        nominal = min(SINK_BACKOFF.cap, SINK_BACKOFF.base * SINK_BACKOFF.factor ** (attempt - 1))
        assert nominal * (1 - SINK_BACKOFF.jitter) <= delay <= nominal
    assert checkpoint.load() == {BTC: mark_after(4), ETH: mark_after(1)}


def test_a_long_store_outage_raises_keeps_the_rows_and_moves_no_mark(tmp_path: Path) -> None:
    sleep = RecordingSleep()

    async def go() -> None:
        store = FakeStore(failures=SINK_BACKOFF.attempts, gated=True)
        buffer, checkpoint = make_buffer(store, 5, tmp_path, sleep)
        await buffer.add(BTC, bars(0, 5))  # the batch whose write will fail on every attempt
        await store.started.wait()
        await buffer.add(BTC, bars(5, 2))  # buffered while the failing write is in flight
        await buffer.add(ETH, bars(0, 1))
        store.gate.set()

        with pytest.raises(SinkUnavailable):
            await buffer.flush()
        assert store.attempts == SINK_BACKOFF.attempts
        assert len(sleep.delays) == SINK_BACKOFF.attempts - 1
        assert store.batches == []
        assert checkpoint.load() == {} and not checkpoint.path.exists()
        assert buffer.durable == {}

        # The store is back: the failed rows go out with the newer ones, in order, once.
        await buffer.flush()
        assert len(store.batches) == 1
        assert timestamps(store.rows, BTC) == expected(0, 7)
        assert timestamps(store.rows, ETH) == expected(0, 1)
        assert checkpoint.load() == {BTC: mark_after(6), ETH: mark_after(0)}
        await buffer.flush()
        assert len(store.batches) == 1  # nothing left behind to write twice

    run(go())


def test_a_long_outage_surfaces_in_add_when_the_next_batch_is_due(tmp_path: Path) -> None:
    async def go() -> None:
        store = FakeStore(failures=SINK_BACKOFF.attempts)
        buffer, checkpoint = make_buffer(store, 3, tmp_path)
        await buffer.add(BTC, bars(0, 3))  # its write fails in the background
        await until(lambda: store.attempts == SINK_BACKOFF.attempts and store.in_flight == 0)
        with pytest.raises(SinkUnavailable):
            await buffer.add(BTC, bars(3, 3))  # the next batch first collects the failure
        assert checkpoint.load() == {}
        await buffer.flush()
        assert timestamps(store.rows, BTC) == expected(0, 6)
        assert checkpoint.load() == {BTC: mark_after(5)}

    run(go())
