"""HISTORY: backfill every series over [start, end), resume where an earlier run stood,
and tell the supervisor how each series ended.

The pagination of one series is :func:`worker.backfill.backfill_series`; the rows go through
a :class:`worker.history_buffer.HistoryBuffer`, which writes large batches in the background
and moves the checkpoint only once a batch is stored.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from core.protocol import SeriesDone, SeriesStatus
from core.series import SeriesKey
from worker.backfill import SeriesOutcome
from worker.checkpoint import HistoryCheckpoint, Mark
from worker.datasets import dataset_for
from worker.errors import CollectorError
from worker.history_buffer import HistoryBuffer
from worker.history_progress import ProgressTally
from worker.session import ExchangeSession, series_extra

log = logging.getLogger(__name__)


@dataclass
class HistoryReport:
    outcomes: list[SeriesOutcome] = field(default_factory=list)
    skipped: list[tuple[SeriesKey, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and all(o.status != SeriesStatus.FAILED for o in self.outcomes)


class HistoryRun:
    def __init__(self, session: ExchangeSession, checkpoint: HistoryCheckpoint | None = None) -> None:
        self.session = session
        self.settings = session.settings
        self.checkpoint = checkpoint or HistoryCheckpoint(None)
        self.buffer = HistoryBuffer(session.write, session.settings.history_flush_rows, clock=session.clock)
        self.progress = ProgressTally(0, 0)

    async def run(self, start_ms: int, end_ms: int,
                  resume_from: dict[SeriesKey, int] | None = None) -> HistoryReport:
        """Backfill every series over [start, end), in parallel within the rate limit.

        Each series starts where ``resume_from`` or the checkpoint of an earlier run of the
        same range says it stood.
        """
        session = self.session
        self.buffer.resume(self.checkpoint, await self._marks_the_store_confirms(self.checkpoint.load()))
        resume_from = {**{s: m.covered_until for s, m in self.buffer.durable.items()}, **(resume_from or {})}
        resuming = sum(1 for s in session.series if resume_from.get(s, start_ms) > start_ms)
        if resuming:
            log.info("resuming: %d of %d series have progress from an earlier run", resuming,
                     len(session.series), extra={"event": "history_resume"})
        self.progress = ProgressTally(start_ms, end_ms)
        for s in session.series:
            self.progress.begin(s, max(start_ms, resume_from.get(s, start_ms)))
        session.history_progress = self.progress.snapshot
        report = HistoryReport(skipped=list(session.skipped))
        for series, reason in session.skipped:
            session.report(SeriesDone(tuple(series), SeriesStatus.SKIPPED, start_ms, error=reason))
        async with session.heartbeat():
            outcomes = await asyncio.gather(*(
                self._backfill(s, max(start_ms, resume_from.get(s, start_ms)), end_ms) for s in session.series))
            # The last write may wait out a store outage (a full disk): still alive meanwhile.
            try:
                await self.buffer.flush()
            except CollectorError as exc:
                for outcome in outcomes:
                    outcome.error = outcome.error or f"store write failed: {exc}"
        for outcome in outcomes:
            outcome.start_ms = min(outcome.start_ms, start_ms)
            if outcome.status.covered:
                self.buffer.mark_covered(outcome.series, end_ms)
            session.report(SeriesDone(tuple(outcome.series), outcome.status, outcome.covered_until,
                                      outcome.candles, outcome.unavailable, outcome.error))
        self.buffer.save_checkpoint()
        report.outcomes = list(outcomes)
        return report

    async def _marks_the_store_confirms(self, marks: dict[SeriesKey, Mark]) -> dict[SeriesKey, Mark]:
        """A checkpoint is only as good as the store: a mark whose last bar is gone is dropped."""
        confirmed = {}
        for series, mark in marks.items():
            if mark.last_bar is not None:
                found = await asyncio.to_thread(self.session.sink.stored_timestamps, series, mark.last_bar,
                                                mark.last_bar + 1)
                if not found:
                    log.warning("%s: the store no longer has the bars the checkpoint recorded; "
                                "fetching the range again", series,
                                extra=series_extra(series, "checkpoint_discarded"))
                    continue
            confirmed[series] = mark
        return confirmed

    async def _emit(self, series: SeriesKey, candles: list[Any]) -> None:
        self.progress.fetched(series, candles)
        await self.buffer.add(series, candles)

    async def _backfill(self, series: SeriesKey, start_ms: int, end_ms: int) -> SeriesOutcome:
        outcome = await dataset_for(series).backfill(self.session.client, series, start_ms, end_ms,
                                                     page_limit=self.settings.history_page_limit,
                                                     emit=self._emit,
                                                     should_stop=lambda: self.session.stopping,
                                                     concurrency=self.settings.max_concurrent_requests)
        self.session.stats.rows_rejected += outcome.rejected
        self.progress.ended(series)
        log.info("%s: %s, %d rows in %d pages", series, outcome.status, outcome.candles,
                 outcome.pages, extra=series_extra(series, "history_series_done",
                                                   status=outcome.status, rows=outcome.candles,
                                                   pages=outcome.pages, error=outcome.error))
        return outcome
