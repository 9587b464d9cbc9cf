"""LIVE: every interval, the last closed bar and the open one of every series, forever.

A cycle fetches every series at once and writes the whole cycle in one batch. When the store
is down the rows wait in the spool, in order, and go first once it is back. When the
exchange is down, or the spool overflows, the series is marked for repair: the next cycle
backfills it from its last stored bar, through the same write path as the cycle's rows.

The cycle ties together what other modules decide (bars to write, points to write, universe
refresh, rate budget and rotation, outage episodes, freshness); it is kept whole so one
reading shows a cycle's order of steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Sequence

from core.protocol import SeriesStatus
from core.series import OHLCV, Candle, Row, SeriesKey, to_rows
from core.timeframes import bar_start
from worker.backfill import SeriesOutcome
from worker.candles import parse_candles
from worker.datasets import dataset_for
from worker.datasets.live_points import LivePointsPolicy
from worker.errors import CollectorError, SinkUnavailable, TransientError, UnsupportedSeries
from worker.live_bars import LiveWritePolicy, classify_live_bars, live_fetch_limit
from worker.live_freshness import LiveFreshness
from worker.live_universe import UniverseRefresh
from worker.outage import OutageEpisode
from worker.rate_budget import RateBudget, Rotation
from worker.session import ExchangeSession, WorkerStats, series_extra
from worker.spool import Spool

log = logging.getLogger(__name__)


class RepairRows:
    """The rows a gap repair fetched, kept until the cycle writes them with its own.

    Repairs write through the LIVE path (spool on failure), never on their own: a store
    outage during a repair must leave the rows in the spool, not in a write nobody awaits.
    """

    def __init__(self, clock_ms: int) -> None:
        self._ingested_at = clock_ms
        self.rows: list[Row] = []
        # Funding and open interest fetched, so that LIVE does not write them a second time.
        self.points: dict[SeriesKey, list[Any]] = {}

    async def add(self, series: SeriesKey, candles: list[Candle]) -> None:
        if series.dataset == OHLCV:
            self.rows.extend(to_rows(series, candles, self._ingested_at))
        else:
            self.rows.extend(dataset_for(series).rows(series, candles, self._ingested_at))
            self.points.setdefault(series, []).extend(candles)


class LiveCollector:
    def __init__(self, session: ExchangeSession, spool: Spool | None = None) -> None:
        self.session = session
        self.settings = session.settings
        self.spool = spool if spool is not None else Spool(None, session.settings.spool_max_rows)
        self._policy = LiveWritePolicy()
        self.outage = OutageEpisode()
        self._points_policy = LivePointsPolicy()
        # Series with a gap to repair, and where it starts when known (None: the store's newest
        # bar). Remembering the start matters: once LIVE writes newer bars again, the store's
        # newest bar lies past the gap.
        self._needs_repair: dict[SeriesKey, int | None] = {}
        self.freshness = LiveFreshness()
        self.universe = UniverseRefresh(session, on_enter=self._entered, on_leave=self._left)
        self._rotation = Rotation()
        self._budget: RateBudget | None = None
        self._rejected: dict[SeriesKey, CollectorError] = {}   # this cycle's refused series

    @property
    def stats(self) -> WorkerStats:
        return self.session.stats

    async def resume_from_store(self) -> None:
        """Backfill from each series' last stored bar, so downtime leaves no gap."""
        async with self.session.heartbeat():
            repaired = await self._repair(self.session.series)
            await self._write_live(repaired.rows)
            self._remember_points(repaired)
        self.stats.spool_rows = len(self.spool)
        self._report_freshness()

    async def cycle(self) -> None:
        """One cycle, telling the supervisor it is alive while it waits on the exchange or store."""
        async with self.session.heartbeat():
            await self._cycle()

    async def _cycle(self) -> None:
        started = time.monotonic()
        if self.universe.due():
            await self.universe.refresh()
        budget = self._check_budget()
        series = self._rotation.take(list(self.session.series), budget.per_cycle)
        # A series polled every k cycles asks for k intervals' bars: none closes unseen.
        covered_s = self.settings.update_interval_seconds * budget.cycles_per_round
        repaired = await self._repair(sorted(self._needs_repair)) if self._needs_repair else None
        results = await asyncio.gather(*(self._fetch(s, covered_s) for s in series))
        if self._rejected:
            rejected, self._rejected = self._rejected, {}
            await self.universe.check_rejected(rejected)
        rows = [row for series_rows, _ in results for row in series_rows]
        written = await self._write_live((repaired.rows if repaired else []) + rows)
        if repaired:
            self._remember_points(repaired)
        if written:
            stored_at = self.session.clock()
            for s, (_, bars) in zip(series, results):
                if bars is None:
                    continue
                if s.dataset == OHLCV:
                    self._policy.written(s, bars)
                    self.freshness.stored(s, stored_at, bars.previous.timestamp if bars.previous else None)
                else:
                    self._points_policy.written(s, bars)
                    self.freshness.stored(s, stored_at, self._points_policy.newest(s) if s.timeframe else None)
        self.stats.spool_rows = len(self.spool)
        self._report_freshness()
        failures = sum(1 for _, bars in results if bars is None)
        self.stats.cycles += 1
        if written and (failures < len(series) or not series):
            self.stats.last_success = self.session.clock()
        self.session.beat()
        log.info("cycle done: %d rows, %d series failed", len(rows), failures,
                 extra={"event": "live_cycle_complete", "rows": len(rows), "failed_series": failures,
                        "duration_ms": round((time.monotonic() - started) * 1000)})

    def _check_budget(self) -> RateBudget:
        """This cycle's budget; logged when the series stop fitting (or their number changes)."""
        budget = RateBudget(len(self.session.series), self.session.client.seconds_per_ohlcv_request(),
                            self.settings.update_interval_seconds)
        if not budget.fits and (self._budget is None or self._budget.fits
                                or self._budget.series != budget.series):
            budget.log_exceeded(self.session.exchange_id)
        self._budget = budget
        self.stats.rate_budget_ratio = round(budget.ratio, 4)
        return budget

    def _entered(self, series: SeriesKey, backfill_from_ms: int | None) -> None:
        if backfill_from_ms is not None:
            self._mark_gap(series, backfill_from_ms)

    def _left(self, series: SeriesKey) -> None:
        self._needs_repair.pop(series, None)
        self._policy.forget(series)
        self._points_policy.forget(series)

    async def _fetch(self, series: SeriesKey, covered_s: float | None = None) -> tuple[list[Row], Any]:
        if self.session.stopping:
            return [], None
        if series.dataset != OHLCV:
            return await self._fetch_points(series)
        client = self.session.client
        limit = live_fetch_limit(series.timeframe, covered_s or self.settings.update_interval_seconds)
        max_limit = client.max_ohlcv_limit(series.symbol)
        if max_limit:
            limit = min(limit, max_limit)
        try:
            now_ms = await client.exchange_now_ms()
            raw = await client.fetch_ohlcv(series.symbol, series.timeframe, None, limit)
        except UnsupportedSeries as exc:
            self.universe.set_aside_delisted(series, exc)
            return [], None
        except CollectorError as exc:
            if not isinstance(exc, TransientError):
                self._rejected[series] = exc
            self.stats.cycle_errors += 1
            self._mark_gap(series, self._policy.last_closed(series))
            log.error("fetch failed for %s: %s", series, exc,
                      extra=series_extra(series, "fetch_error", error=str(exc)[:300],
                                         retryable=isinstance(exc, TransientError)))
            return [], None
        batch = parse_candles(raw, series.timeframe)
        self.session.count_rejections(series, batch)
        bars = classify_live_bars(batch.candles, series.timeframe, now_ms)
        candles = self._policy.select(series, bars)
        return to_rows(series, candles, int(self.session.clock() * 1000)), bars

    async def _fetch_points(self, series: SeriesKey) -> tuple[list[Row], list[Any] | None]:
        """The funding rates or open-interest periods that appeared since the last cycles."""
        dataset = dataset_for(series)
        try:
            now_ms = await self.session.client.exchange_now_ms()  # what happened is on its clock
        except CollectorError:
            now_ms = int(self.session.clock() * 1000)
        since = now_ms - dataset.live_lookback_ms(series, self.settings.update_interval_seconds)
        found: list[Any] = []

        async def keep(_: SeriesKey, points: list[Any]) -> None:
            found.extend(points)

        outcome = await dataset.backfill(self.session.client, series, since, now_ms + 1,
                                         page_limit=self.settings.history_page_limit, emit=keep)
        self.session.stats.rows_rejected += outcome.rejected
        if outcome.error is not None:
            self.stats.cycle_errors += 1
            self._mark_gap(series, self._points_policy.newest(series))
            log.error("fetch failed for %s: %s", series, outcome.error,
                      extra=series_extra(series, "fetch_error", error=outcome.error[:300]))
            return [], None
        fresh = self._points_policy.select(series, found)
        return dataset.rows(series, fresh, int(self.session.clock() * 1000)), fresh

    def _report_freshness(self) -> None:
        report = self.freshness.take_report()
        if report is not None:
            self.session.report(report)

    # -- writing: spool first, then this cycle's rows ---------------------------------------

    async def _write_live(self, rows: list[Row]) -> bool:
        """Deliver spooled rows first (in order), then ``rows``; spool them on failure."""
        if len(self.spool):
            spooled = self.spool.rows()
            try:
                await self.session.write(spooled)
            except SinkUnavailable as exc:
                return self._spool(rows, exc)
            self.spool.clear()
            log.info("delivered %d spooled rows", len(spooled),
                     extra={"event": "spool_delivered", "rows": len(spooled)})
            self.outage.succeeded(delivered=len(spooled))
        if not rows:
            return True
        try:
            await self.session.write(rows)
        except SinkUnavailable as exc:
            return self._spool(rows, exc)
        self.outage.succeeded(delivered=0)
        return True

    def _spool(self, rows: list[Row], exc: Exception) -> bool:
        """Keep ``rows`` for a later cycle. The spool file shares the store's disk: when it
        cannot be written either, the spool keeps the rows in memory (same bound) and writes
        its file again once it can."""
        overflow = self.spool.append(rows)
        # The first failure of an episode is the error; the rest only say it goes on.
        level = logging.WARNING if self.outage.active else logging.ERROR
        log.log(level, "store unavailable, %d rows spooled for the next cycle: %s", len(self.spool), exc,
                extra={"event": "sink_write_error", "rows": len(rows), "spooled": len(self.spool),
                       "error": str(exc)[:300], "spool_on_disk": self.spool.on_disk})
        self.outage.failed(exc, spooled=len(self.spool))
        if overflow:
            # Nothing is lost for good: repair refetches these series from the last stored bar.
            for row in overflow:
                self._mark_gap(row.series, row.timestamp)
            log.critical("spool full (%d rows): %d rows dropped, their series will be repaired "
                         "from the exchange", self.spool.max_rows, len(overflow),
                         extra={"event": "spool_full", "rows": len(overflow)})
        return False

    # -- gap repair ------------------------------------------------------------------------

    def _remember_points(self, repaired: RepairRows) -> None:
        """Rows a repair wrote (or spooled) are not written again by the next cycles."""
        for series, points in repaired.points.items():
            self._points_policy.written(series, points)

    async def _repair(self, series: Sequence[SeriesKey]) -> RepairRows:
        """The closed bars each series misses since its last stored one (inclusive: it may
        have been stored while open), as rows for the caller to write."""
        try:
            watermarks = await asyncio.to_thread(self.session.sink.last_timestamps, series)
        except CollectorError as exc:
            log.error("cannot read the store's watermarks: %s", exc,
                      extra={"event": "gap_repair_error", "error": str(exc)[:300]})
            for s in series:
                self._mark_gap(s, None)
            return RepairRows(int(self.session.clock() * 1000))
        starts = {s: self._needs_repair.get(s) or watermarks.get(s) for s in series}
        now_ms = int(self.session.clock() * 1000)
        for s, last_ms in watermarks.items():
            self.freshness.found_in_store(s, last_ms, now_ms)
        floor = now_ms - int(self.settings.max_gap_repair_hours * 3_600_000)
        repaired = RepairRows(now_ms)
        outcomes = await asyncio.gather(*(
            self._repair_one(s, start, floor, now_ms, repaired) for s, start in starts.items()
            if start is not None))
        for s in series:
            self._needs_repair.pop(s, None)
        for outcome in outcomes:
            if outcome is not None and outcome.status == SeriesStatus.FAILED:
                self._mark_gap(outcome.series, starts[outcome.series])
        return repaired

    def _mark_gap(self, series: SeriesKey, since_ms: int | None) -> None:
        """Remember that ``series`` needs repair from ``since_ms``; the earliest known start wins."""
        known = self._needs_repair.get(series)
        if known is None:
            self._needs_repair[series] = since_ms
        elif since_ms is not None:
            self._needs_repair[series] = min(known, since_ms)

    async def _repair_one(self, series: SeriesKey, last_ms: int, floor_ms: int, now_ms: int,
                          repaired: RepairRows) -> SeriesOutcome | None:
        dataset = dataset_for(series)
        resume_at = last_ms if series.dataset == OHLCV else dataset.next_after(series, last_ms)
        start = max(resume_at, dataset.align_down(series, floor_ms))
        if series.dataset == OHLCV and start >= bar_start(now_ms, series.timeframe):
            return None  # nothing closed is missing; the LIVE fetch covers the rest
        outcome = await dataset.backfill(self.session.client, series, start, now_ms,
                                         page_limit=self.settings.history_page_limit,
                                         emit=repaired.add,
                                         concurrency=self.settings.max_concurrent_requests)
        if last_ms < floor_ms:
            log.warning("%s: gap since %s is longer than max_gap_repair_hours; repaired from %s",
                        series, last_ms, start, extra=series_extra(series, "gap_repair_truncated"))
        log.info("%s: repaired %d bars since the last stored one", series, outcome.candles,
                 extra=series_extra(series, "gap_repair", rows=outcome.candles,
                                    status=outcome.status))
        return outcome

