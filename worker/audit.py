"""AUDIT: compare what is stored with what the exchange serves, and say which gaps are real.

Every missing bar on the grid is either a failure of ours (the exchange has it now: the gap
can be repaired) or not (no trades in that bar, or the exchange no longer serves that far
back). The exchange is asked once for the whole range, as a HISTORY run would, without
writing unless asked to repair.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from core.protocol import AuditDone, GapKind, GapReport
from core.series import OHLCV, Candle, SeriesKey
from core.timeframes import bar_start, next_bar_start
from worker.backfill import backfill_series
from worker.exchange import ExchangeClient
from worker.history_buffer import HistoryBuffer
from worker.session import ExchangeSession

log = logging.getLogger(__name__)

StoredTimestamps = Callable[[SeriesKey, int, int], Awaitable[list[int]]]
Write = Callable[[SeriesKey, list[Candle]], Awaitable[None]]


@dataclass
class Gap:
    start_ms: int
    end_ms: int           # exclusive
    missing: int          # grid bars missing in [start, end)
    kind: GapKind
    exchange_bars: int = 0


@dataclass
class AuditResult:
    series: SeriesKey
    expected: int = 0
    stored: int = 0
    gaps: list[Gap] = field(default_factory=list)
    repaired: int = 0
    error: str | None = None
    after_repair: list[Gap] | None = None
    grid: str | None = None          # see AuditDone.grid

    @property
    def repairable(self) -> int:
        return sum(g.exchange_bars for g in self.gaps if g.kind == GapKind.REPAIRABLE) - self.repaired

    def to_message(self) -> AuditDone:
        return AuditDone(tuple(self.series), self.expected, self.stored, self.repairable, self.repaired,
                         _reports(self.gaps), self.error,
                         None if self.after_repair is None else _reports(self.after_repair), self.grid)


def _reports(gaps: list[Gap]) -> list[GapReport]:
    return [GapReport(g.start_ms, g.end_ms, g.missing, g.kind, g.exchange_bars) for g in gaps]


def grid(start_ms: int, end_ms: int, timeframe: str) -> list[int]:
    ts = bar_start(start_ms, timeframe)
    if ts < start_ms:
        ts = next_bar_start(ts, timeframe)
    bars = []
    while ts < end_ms:
        bars.append(ts)
        ts = next_bar_start(ts, timeframe)
    return bars


async def audit_series(client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                       page_limit: int, stored_timestamps: StoredTimestamps,
                       repair: Write | None = None, concurrency: int = 1) -> AuditResult:
    result = AuditResult(series)
    served: dict[int, Candle] = {}

    async def keep(_: SeriesKey, candles: list[Candle]) -> None:
        served.update((c.timestamp, c) for c in candles)

    outcome = await backfill_series(client, series, start_ms, end_ms, page_limit=page_limit, emit=keep,
                                    concurrency=concurrency)
    if outcome.error:
        result.error = outcome.error
        return result
    closed_end = min(end_ms, outcome.covered_until)
    expected = grid(start_ms, closed_end, series.timeframe)
    stored = set(await stored_timestamps(series, start_ms, closed_end))
    result.expected, result.stored = len(expected), len(stored & set(expected))
    missing = [ts for ts in expected if ts not in stored]
    result.gaps = classify_gaps(missing, series.timeframe, served.__contains__, outcome.unavailable)
    missing_served = [served[ts] for g in result.gaps if g.kind == GapKind.REPAIRABLE
                      for ts in grid(g.start_ms, g.end_ms, series.timeframe) if ts in served]
    if repair is not None:
        if missing_served:
            await repair(series, missing_served)
            result.repaired = len(missing_served)
        # What the store lacks once the repair is written: bars the exchange does not serve.
        written = {c.timestamp for c in missing_served}
        result.after_repair = classify_gaps([ts for ts in missing if ts not in written], series.timeframe,
                                            served.__contains__, outcome.unavailable)
    return result


def classify_gaps(missing: list[int], grid: str | int, served: Callable[[int], bool],
                  unavailable: list[tuple[int, int]], *, unavailable_slack_ms: int = 0) -> list[Gap]:
    """Group consecutive missing bars of the same kind: served now (repairable), inside a
    range the exchange no longer serves (unavailable), or neither (no trades). A quiet bar
    next to a lost run stays its own gap, so the run's neighbours are not painted repairable.

    ``grid`` is the bars' timeframe, or the step between expected rows in milliseconds.
    """
    gaps: list[Gap] = []
    for ts in missing:
        end = ts + grid if isinstance(grid, int) else next_bar_start(ts, grid)
        if served(ts):
            kind = GapKind.REPAIRABLE
        elif any(a <= ts and end <= b + unavailable_slack_ms for a, b in unavailable):
            kind = GapKind.UNAVAILABLE
        else:
            kind = GapKind.NO_TRADES
        if gaps and gaps[-1].end_ms == ts and gaps[-1].kind == kind:
            gaps[-1].end_ms = end
            gaps[-1].missing += 1
        else:
            gaps.append(Gap(ts, end, 1, kind))
        if kind == GapKind.REPAIRABLE:
            gaps[-1].exchange_bars += 1
    return gaps


class AuditRun:
    """AUDIT of every series of a session; with ``repair``, the repairable bars are written
    as HISTORY writes them (large batches through a :class:`HistoryBuffer`)."""

    def __init__(self, session: ExchangeSession) -> None:
        self.session = session

    async def run(self, start_ms: int, end_ms: int, *, repair: bool) -> list[AuditResult]:
        session, settings = self.session, self.session.settings
        buffer = HistoryBuffer(session.write, settings.history_flush_rows, clock=session.clock)

        async def stored(series: SeriesKey, start: int, end: int) -> list[int]:
            return await asyncio.to_thread(session.sink.stored_timestamps, series, start, end)

        from worker.datasets.audit_points import audit_points  # it builds on this module

        def audit(s: SeriesKey) -> Awaitable[AuditResult]:
            if s.dataset != OHLCV:
                return audit_points(session.client, s, start_ms, end_ms, page_limit=settings.history_page_limit,
                                    stored_timestamps=stored, repair=buffer.add if repair else None)
            return audit_series(session.client, s, start_ms, end_ms, page_limit=settings.history_page_limit,
                                stored_timestamps=stored, repair=buffer.add if repair else None,
                                concurrency=settings.max_concurrent_requests)

        async with session.heartbeat():
            results = await asyncio.gather(*(audit(s) for s in session.series))
            await buffer.flush()
        for result in results:
            session.report(result.to_message())
        return list(results)
