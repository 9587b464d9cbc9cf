"""One exchange's worker: its series, its LIVE cycles, its HISTORY runs.

The same object runs inside a worker process (``worker.process``) or in-process in tests.
Exchange and store trouble is logged and counted here and never escapes a cycle: a LIVE
worker only stops when it is told to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from core.config import ExchangeConfig, Settings
from core.protocol import Heartbeat, Message, SeriesDone, SeriesStatus
from core.series import OhlcvRow, SeriesKey, to_rows
from core.timeframes import bar_start
from worker.audit import AuditResult, audit_series
from worker.candles import parse_candles
from worker.checkpoint import HistoryCheckpoint, Mark
from worker.errors import CollectorError, SinkRejected, SinkUnavailable, TransientError
from worker.exchange import ExchangeClient
from worker.history import SeriesOutcome, backfill_series, log_rejections
from worker.history_buffer import HistoryBuffer
from worker.live import LiveWritePolicy, classify_live_bars, live_fetch_limit
from worker.sinks.base import Sink
from worker.spool import DeadLetters, Spool

log = logging.getLogger("worker.runner")

Report = Callable[[Message], None]


@dataclass
class WorkerStats:
    rows_written: int = 0
    rows_rejected: int = 0
    cycles: int = 0
    cycle_errors: int = 0
    last_success: float | None = None

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.rows_written, self.rows_rejected, self.last_success)


@dataclass
class HistoryReport:
    outcomes: list[SeriesOutcome] = field(default_factory=list)
    skipped: list[tuple[SeriesKey, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped and all(o.status != SeriesStatus.FAILED for o in self.outcomes)


def _series_extra(series: SeriesKey, event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, "symbol": series.symbol, "timeframe": series.timeframe, **fields}


class Worker:
    def __init__(
        self,
        exchange_id: str,
        exchange: ExchangeConfig,
        settings: Settings,
        sink: Sink,
        *,
        client: ExchangeClient | None = None,
        report: Report | None = None,
        clock: Callable[[], float] = time.time,
        spool: Spool | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.settings = settings
        self.sink = sink
        self.client = client or ExchangeClient(
            exchange_id, exchange.ccxt, max_concurrent_requests=settings.max_concurrent_requests)
        self.configured = [SeriesKey(exchange_id, s.symbol, tf)
                           for s in exchange.symbols for tf in s.timeframes]
        self.series: list[SeriesKey] = []
        self.skipped: list[tuple[SeriesKey, str]] = []
        self.stats = WorkerStats()
        self._report = report or (lambda message: None)
        self._clock = clock
        self._policy = LiveWritePolicy()
        # Series with a gap to repair, and where it starts when known (None: the store's newest
        # bar). Remembering the start matters: once LIVE writes newer bars again, the store's
        # newest bar lies past the gap.
        self._needs_repair: dict[SeriesKey, int | None] = {}
        self.spool = spool if spool is not None else Spool(None, settings.spool_max_rows)
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters(None)
        self._history = HistoryBuffer(self._write, settings.history_flush_rows, clock=clock)
        self._stopping = False

    # -- setup -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the exchange, keep the series it offers, prepare the store."""
        await self.client.open()
        # Bars close on the exchange's clock. Reading it while connecting spares the first
        # cycle or backfill a round trip; it is read again every 10 minutes.
        await self.client.exchange_now_ms()
        for series in self.configured:
            reason = self.client.unsupported_reason(series.symbol, series.timeframe)
            if reason:
                self.skipped.append((series, reason))
                log.error("skipping %s: %s", series, reason,
                          extra=_series_extra(series, "series_skipped", reason=reason))
            else:
                self.series.append(series)
        await asyncio.to_thread(self.sink.ensure)
        log.info("%s ready: %d series, %d skipped", self.exchange_id, len(self.series),
                 len(self.skipped), extra={"event": "worker_ready", "series": len(self.series),
                                            "skipped": len(self.skipped)})

    async def close(self) -> None:
        # Together: ccxt's close waits 250 ms for connections to shut down cleanly, and the
        # store's close waits for its writer process to finish.
        await asyncio.gather(self.client.close(), asyncio.to_thread(self.sink.close))

    def request_stop(self) -> None:
        """Finish the write in flight, start no new request, stop waiting to retry (in the loop)."""
        self._stopping = True
        self.client.abort_retries()

    # -- LIVE ------------------------------------------------------------------------------

    async def resume_from_store(self) -> None:
        """Backfill from each series' last stored bar, so downtime leaves no gap."""
        heartbeat = asyncio.create_task(self._heartbeat_while_running())
        try:
            await self._repair(self.series)
        finally:
            heartbeat.cancel()

    async def live_cycle(self) -> None:
        """One cycle, telling the supervisor it is alive while it waits on the exchange or store."""
        heartbeat = asyncio.create_task(self._heartbeat_while_running())
        try:
            await self._live_cycle()
        finally:
            heartbeat.cancel()

    async def _live_cycle(self) -> None:
        """Fetch every series once, write the whole cycle in one batch."""
        started = time.monotonic()
        if self._needs_repair:
            await self._repair(sorted(self._needs_repair))
        results = await asyncio.gather(*(self._fetch_live(s) for s in self.series))
        rows = [row for series_rows, _ in results for row in series_rows]
        written = await self._write_live(rows)
        if written:
            for series, bars in ((s, bars) for s, (_, bars) in zip(self.series, results) if bars):
                self._policy.written(series, bars)
        failures = sum(1 for _, bars in results if bars is None)
        self.stats.cycles += 1
        if written and failures < len(self.series):
            self.stats.last_success = self._clock()
        self._report(self.stats.heartbeat())
        log.info("cycle done: %d rows, %d series failed", len(rows), failures,
                 extra={"event": "live_cycle_complete", "rows": len(rows), "failed_series": failures,
                        "duration_ms": round((time.monotonic() - started) * 1000)})

    async def _fetch_live(self, series: SeriesKey) -> tuple[list[OhlcvRow], Any]:
        if self._stopping:
            return [], None
        limit = live_fetch_limit(series.timeframe, self.settings.update_interval_seconds)
        try:
            now_ms = await self.client.exchange_now_ms()
            raw = await self.client.fetch_ohlcv(series.symbol, series.timeframe, None, limit)
        except CollectorError as exc:
            self.stats.cycle_errors += 1
            self._mark_gap(series, self._policy.last_closed(series))
            log.error("fetch failed for %s: %s", series, exc,
                      extra=_series_extra(series, "fetch_error", error=str(exc)[:300],
                                          retryable=isinstance(exc, TransientError)))
            return [], None
        batch = parse_candles(raw, series.timeframe)
        self._count_rejections(series, batch)
        bars = classify_live_bars(batch.candles, series.timeframe, now_ms)
        candles = self._policy.select(series, bars)
        return to_rows(series, candles, int(self._clock() * 1000)), bars

    async def _write_live(self, rows: list[OhlcvRow]) -> bool:
        """Deliver spooled rows first (in order), then this cycle's; spool them on failure."""
        if len(self.spool):
            spooled = self.spool.rows()
            try:
                await self._write(spooled)
            except SinkUnavailable as exc:
                return self._spool(rows, exc)
            self.spool.clear()
            log.info("delivered %d spooled rows", len(spooled),
                     extra={"event": "spool_delivered", "rows": len(spooled)})
        if not rows:
            return True
        try:
            await self._write(rows)
        except SinkUnavailable as exc:
            return self._spool(rows, exc)
        return True

    def _spool(self, rows: list[OhlcvRow], exc: Exception) -> bool:
        overflow = self.spool.append(rows)
        log.error("store unavailable, %d rows spooled for the next cycle: %s", len(self.spool), exc,
                  extra={"event": "sink_write_error", "rows": len(rows), "spooled": len(self.spool),
                         "error": str(exc)[:300]})
        if overflow:
            # Nothing is lost for good: repair refetches these series from the last stored bar.
            for row in overflow:
                self._mark_gap(row.series, row.timestamp)
            log.critical("spool full (%d rows): %d rows dropped, their series will be repaired "
                         "from the exchange", self.spool.max_rows, len(overflow),
                         extra={"event": "spool_full", "rows": len(overflow)})
        return False

    async def _repair(self, series: Sequence[SeriesKey]) -> None:
        """Backfill each series from its last stored bar (inclusive: it may have been open)."""
        try:
            watermarks = await asyncio.to_thread(self.sink.last_timestamps, series)
        except CollectorError as exc:
            log.error("cannot read the store's watermarks: %s", exc,
                      extra={"event": "gap_repair_error", "error": str(exc)[:300]})
            for s in series:
                self._mark_gap(s, None)
            return
        starts = {s: self._needs_repair.get(s) or watermarks.get(s) for s in series}
        now_ms = int(self._clock() * 1000)
        floor = now_ms - int(self.settings.max_gap_repair_hours * 3_600_000)
        outcomes = await asyncio.gather(*(
            self._repair_one(s, start, floor, now_ms) for s, start in starts.items() if start is not None))
        for s in series:
            self._needs_repair.pop(s, None)
        for outcome in outcomes:
            if outcome is not None and outcome.status == SeriesStatus.FAILED:
                self._mark_gap(outcome.series, starts[outcome.series])
        rows = self._history.take_rows()
        # LIVE must not stall on a store outage: repaired rows take the spool's path.
        await self._write_live(rows)

    def _mark_gap(self, series: SeriesKey, since_ms: int | None) -> None:
        """Remember that ``series`` needs repair from ``since_ms``; the earliest known start wins."""
        known = self._needs_repair.get(series)
        if known is None:
            self._needs_repair[series] = since_ms
        elif since_ms is not None:
            self._needs_repair[series] = min(known, since_ms)

    async def _repair_one(self, series: SeriesKey, last_ms: int, floor_ms: int,
                          now_ms: int) -> SeriesOutcome | None:
        start = max(last_ms, bar_start(floor_ms, series.timeframe))
        if start >= bar_start(now_ms, series.timeframe):
            return None  # nothing closed is missing; the LIVE fetch covers the rest
        outcome = await backfill_series(self.client, series, start, now_ms,
                                        page_limit=self.settings.history_page_limit,
                                        emit=self._history.add,
                                        concurrency=self.settings.max_concurrent_requests)
        if last_ms < floor_ms:
            log.warning("%s: gap since %s is longer than max_gap_repair_hours; repaired from %s",
                        series, last_ms, start, extra=_series_extra(series, "gap_repair_truncated"))
        log.info("%s: repaired %d bars since the last stored one", series, outcome.candles,
                 extra=_series_extra(series, "gap_repair", rows=outcome.candles,
                                     status=outcome.status))
        return outcome

    # -- HISTORY ---------------------------------------------------------------------------

    async def run_history(self, start_ms: int, end_ms: int,
                          resume_from: dict[SeriesKey, int] | None = None,
                          checkpoint: HistoryCheckpoint | None = None) -> HistoryReport:
        """Backfill every series over [start, end), in parallel within the rate limit.

        Each series starts where ``resume_from`` or the checkpoint of an earlier run of the
        same range says it stood.
        """
        checkpoint = checkpoint or HistoryCheckpoint(None)
        self._history.resume(checkpoint, await self._marks_the_store_confirms(checkpoint.load()))
        resume_from = {**{s: m.covered_until for s, m in self._history.durable.items()},
                       **(resume_from or {})}
        if any(resume_from.get(s, start_ms) > start_ms for s in self.series):
            log.info("resuming: %d of %d series have progress from an earlier run",
                     sum(1 for s in self.series if resume_from.get(s, start_ms) > start_ms),
                     len(self.series), extra={"event": "history_resume"})
        report = HistoryReport(skipped=list(self.skipped))
        for series, reason in self.skipped:
            self._report(SeriesDone(tuple(series), SeriesStatus.SKIPPED, start_ms, error=reason))
        heartbeat = asyncio.create_task(self._heartbeat_while_running())
        try:
            outcomes = await asyncio.gather(*(
                self._backfill_and_report(s, max(start_ms, resume_from.get(s, start_ms)), end_ms)
                for s in self.series))
        finally:
            heartbeat.cancel()
        try:
            await self._history.flush()
        except CollectorError as exc:
            for outcome in outcomes:
                outcome.error = outcome.error or f"store write failed: {exc}"
        for outcome in outcomes:
            outcome.start_ms = min(outcome.start_ms, start_ms)
            if outcome.status.covered:
                self._history.mark_covered(outcome.series, end_ms)
            self._report(SeriesDone(tuple(outcome.series), outcome.status, outcome.covered_until,
                                    outcome.candles, outcome.unavailable, outcome.error))
        self._history.save_checkpoint()
        report.outcomes = list(outcomes)
        return report

    async def _marks_the_store_confirms(self, marks: dict[SeriesKey, Mark]) -> dict[SeriesKey, Mark]:
        """A checkpoint is only as good as the store: a mark whose last bar is gone is dropped."""
        confirmed = {}
        for series, mark in marks.items():
            if mark.last_bar is not None:
                found = await asyncio.to_thread(self.sink.stored_timestamps, series, mark.last_bar,
                                                mark.last_bar + 1)
                if not found:
                    log.warning("%s: the store no longer has the bars the checkpoint recorded; "
                                "fetching the range again", series,
                                extra=_series_extra(series, "checkpoint_discarded"))
                    continue
            confirmed[series] = mark
        return confirmed

    async def _backfill_and_report(self, series: SeriesKey, start_ms: int, end_ms: int) -> SeriesOutcome:
        outcome = await backfill_series(self.client, series, start_ms, end_ms,
                                        page_limit=self.settings.history_page_limit,
                                        emit=self._history.add,
                                        should_stop=lambda: self._stopping,
                                        concurrency=self.settings.max_concurrent_requests)
        self.stats.rows_rejected += outcome.rejected
        log.info("%s: %s, %d candles in %d pages", series, outcome.status, outcome.candles,
                 outcome.pages, extra=_series_extra(series, "history_series_done",
                                                    status=outcome.status, rows=outcome.candles,
                                                    pages=outcome.pages, error=outcome.error))
        return outcome

    # -- AUDIT -----------------------------------------------------------------------------

    async def run_audit(self, start_ms: int, end_ms: int, *, repair: bool) -> list[AuditResult]:
        """Classify every gap of every series in [start, end); fill the repairable ones if asked."""
        async def stored(series: SeriesKey, start: int, end: int) -> list[int]:
            return await asyncio.to_thread(self.sink.stored_timestamps, series, start, end)

        heartbeat = asyncio.create_task(self._heartbeat_while_running())
        try:
            results = await asyncio.gather(*(
                audit_series(self.client, s, start_ms, end_ms,
                             page_limit=self.settings.history_page_limit, stored_timestamps=stored,
                             repair=self._history.add if repair else None,
                             concurrency=self.settings.max_concurrent_requests)
                for s in self.series))
            await self._history.flush()
        finally:
            heartbeat.cancel()
        for result in results:
            self._report(result.to_message())
        return list(results)

    async def _heartbeat_while_running(self) -> None:
        """Tells the supervisor the event loop is still turning while a long step runs.

        The beat comes several times within the supervisor's hung-worker timeout
        (heartbeat_timeout_intervals x update_interval_seconds), however short that is.
        """
        timeout_s = self.settings.heartbeat_timeout_intervals * self.settings.update_interval_seconds
        every_s = min(5.0, timeout_s / 4)
        while True:
            self._report(self.stats.heartbeat())
            await asyncio.sleep(every_s)

    # -- writing ---------------------------------------------------------------------------

    async def _write(self, rows: list[OhlcvRow]) -> None:
        try:
            result = await asyncio.to_thread(self.sink.write, rows)
        except SinkRejected as exc:
            self.stats.rows_rejected += len(rows)
            self.dead_letters.add((row, str(exc)) for row in rows)
            log.error("store refused %d rows (kept in the dead-letter file): %s", len(rows), exc,
                      extra={"event": "sink_write_rejected", "rows": len(rows), "error": str(exc)[:300]})
            return
        self.stats.rows_written += result.written
        self.stats.rows_rejected += len(result.rejected)
        self.dead_letters.add(result.rejected)
        for row, reason in result.rejected[:20]:
            log.error("store rejected a row of %s: %s", row.series, reason,
                      extra=_series_extra(row.series, "sink_row_rejected", reason=reason[:300]))
        log.debug("wrote %d rows", result.written, extra={"event": "sink_write_ok", "rows": result.written})

    def _count_rejections(self, series: SeriesKey, batch: Any) -> None:
        if batch.rejected:
            self.stats.rows_rejected += len(batch.rejected)
            log_rejections(series, batch)
