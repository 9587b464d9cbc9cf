"""HISTORY rows on their way to the store: buffered, written in the background, checkpointed.

Backfills hand over closed bars page by page. Rows go to the store in batches of
``history_flush_rows`` (one BigQuery load job, one SQLite transaction), and a batch is written
while the backfills go on fetching: waiting for the store would leave the exchange's rate
limit unused. Writes happen one at a time, in order. A series' checkpoint mark only moves once
the batch holding its rows is stored, so a resumed run never skips rows that were lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from core.retry import Backoff
from core.row_batch import RowBatch
from core.series import OHLCV, Candle, SeriesKey
from core.timeframes import next_bar_start
from worker.checkpoint import HistoryCheckpoint, Mark
from worker.datasets import dataset_for
from worker.errors import SinkUnavailable

log = logging.getLogger(__name__)

# A store outage shorter than about a minute costs a pause, not the run.
SINK_BACKOFF = Backoff(base=2.0, factor=2.0, cap=30.0, attempts=5)

WriteRows = Callable[[RowBatch], Awaitable[None]]


class HistoryBuffer:
    def __init__(self, write: WriteRows, flush_rows: int, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._write = write
        self._flush_rows = flush_rows
        self._clock = clock
        self._sleep = sleep
        self._rows = RowBatch()  # candle pages stay columns on their way to the store
        self._marks: dict[SeriesKey, Mark] = {}     # of the buffered rows: not stored yet
        self.durable: dict[SeriesKey, Mark] = {}    # what the checkpoint file says
        self.checkpoint = HistoryCheckpoint(None)
        self._writing: asyncio.Future[None] | None = None
        self._one_write_at_a_time = asyncio.Lock()

    def resume(self, checkpoint: HistoryCheckpoint, durable: dict[SeriesKey, Mark]) -> None:
        self.checkpoint, self.durable = checkpoint, dict(durable)

    def mark_covered(self, series: SeriesKey, until_ms: int) -> None:
        """``series`` is done up to ``until_ms``: every bar before it is stored or not served."""
        previous = self.durable.get(series)
        self.durable[series] = Mark(until_ms, previous.last_bar if previous else None)

    def save_checkpoint(self) -> None:
        self.checkpoint.save(self.durable)

    async def add(self, series: SeriesKey, candles: list[Candle]) -> None:
        """Buffer closed bars of one series (ascending); start a write once a batch is full."""
        last = candles[-1].timestamp
        if series.dataset == OHLCV:
            self._rows.add_candles(series, candles, int(self._clock() * 1000))
            self._marks[series] = Mark(next_bar_start(last, series.timeframe), last)
        else:
            dataset = dataset_for(series)
            self._rows.add_rows(dataset.rows(series, candles, int(self._clock() * 1000)))
            self._marks[series] = Mark(dataset.next_after(series, last), last)
        if len(self._rows) >= self._flush_rows:
            await self._start_write(full_batches_only=True)

    async def flush(self) -> None:
        """Store everything buffered. Raises the store's error if it stays unavailable."""
        await self._start_write(full_batches_only=False)
        async with self._one_write_at_a_time:
            await self._finish_write()

    async def _start_write(self, *, full_batches_only: bool) -> None:
        async with self._one_write_at_a_time:
            await self._finish_write()  # the previous batch first: its error is raised here
            if not self._rows or (full_batches_only and len(self._rows) < self._flush_rows):
                return  # another series started this write while we waited
            rows, marks = self._rows, self._marks
            self._rows, self._marks = RowBatch(), {}
            self._writing = asyncio.ensure_future(self._store(rows, marks))

    async def _finish_write(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _store(self, rows: RowBatch, marks: dict[SeriesKey, Mark]) -> None:
        for attempt in range(1, SINK_BACKOFF.attempts + 1):
            try:
                await self._write(rows)
            except SinkUnavailable as exc:
                if attempt == SINK_BACKOFF.attempts:
                    # Kept for the next write: nothing buffered is dropped, no mark moves.
                    self._rows = rows + self._rows
                    self._marks = {**marks, **self._marks}
                    raise
                delay = SINK_BACKOFF.delay(attempt)
                log.warning("store unavailable, retrying %d rows in %.1f s: %s", len(rows), delay,
                            exc, extra={"event": "sink_write_retry", "attempt": attempt,
                                        "rows": len(rows), "error": str(exc)[:300]})
                await self._sleep(delay)
                continue
            self.durable.update(marks)
            self.save_checkpoint()
            return
