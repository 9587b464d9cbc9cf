"""HISTORY for the point datasets (funding rates, open interest): page through [start, end).

Two ways of paging, as the exchanges serve them: forward from a cursor (Binance: ascending
pages from startTime; open interest in windows of one page each), or back from the end
(OKX funding: newest first before an ``after`` cursor; Bybit funding: before ccxt's
``until``). The part of the range older than what the exchange keeps (Binance: 30 days of open
interest; OKX: about 3 months of funding) is not asked for and is reported as unavailable;
nothing is ever invented.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from core.series import SeriesKey
from worker.backfill import SeriesOutcome
from worker.datasets.base import Emit
from worker.datasets.facts import DAY_MS, DatasetFacts
from worker.datasets.points import ParsedPoints, log_point_rejections
from worker.errors import CollectorError
from worker.exchange import ExchangeClient

log = logging.getLogger(__name__)

# The history limit moves with the exchange's clock while a request travels: ask a little
# inside it, so that its oldest row is still served when the request arrives.
HISTORY_EDGE_MARGIN_MS = 10_000

# A page: (validated points, the cursor of the next page or None when the range is done).
FetchForward = Callable[[int, int, int], Awaitable[tuple[ParsedPoints, int | None]]]
# A page before ``after`` (exclusive): validated points and how many entries the answer had.
FetchBackward = Callable[[int, int], Awaitable[tuple[ParsedPoints, int]]]


async def backfill_points(client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                          facts: DatasetFacts, page_limit: int, first_at_or_after: Callable[[int], int],
                          emit: Emit, should_stop: Callable[[], bool],
                          forward: FetchForward | None = None,
                          backward: FetchBackward | None = None) -> SeriesOutcome:
    cursor = first_at_or_after(start_ms)
    outcome = SeriesOutcome(series, start_ms, end_ms, covered_until=cursor)
    limit = min(page_limit, facts.page_limit)
    try:
        now_ms = await client.exchange_now_ms()
        stop = min(end_ms, now_ms + 1)   # the exchange serves only what has happened
        if facts.history_days is not None:
            oldest = first_at_or_after(now_ms - int(facts.history_days * DAY_MS) + HISTORY_EDGE_MARGIN_MS)
            if cursor < oldest:
                _report_unavailable(outcome, start_ms, min(oldest, end_ms))
                cursor = oldest
        if backward is not None:
            await _page_backward(series, cursor, stop, limit, backward, emit, should_stop, outcome)
        else:
            assert forward is not None
            await _page_forward(series, cursor, stop, limit, forward, emit, should_stop, outcome)
    except CollectorError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        log.error("backfill of %s stopped at %s: %s", series, outcome.covered_until, exc,
                  extra={"event": "history_series_error", "symbol": series.symbol, "timeframe": series.timeframe,
                         "dataset": series.dataset, "error": str(exc)[:300]})
        return outcome
    if outcome.error is None:
        outcome.covered_until = max(outcome.covered_until, min(end_ms, stop))
    return outcome


async def _page_forward(series: SeriesKey, cursor: int, stop: int, limit: int, fetch: FetchForward,
                        emit: Emit, should_stop: Callable[[], bool], outcome: SeriesOutcome) -> None:
    while cursor < stop:
        if should_stop():
            outcome.error = "interrupted by shutdown"
            return
        parsed, next_cursor = await fetch(cursor, stop, limit)
        _count(series, parsed, outcome)
        fresh = [p for p in parsed.points if cursor <= p.timestamp < stop]
        if fresh:
            await emit(series, fresh)
            outcome.candles += len(fresh)
        if next_cursor is None or next_cursor <= cursor:
            return
        cursor = next_cursor
        outcome.covered_until = min(cursor, stop)


async def _page_backward(series: SeriesKey, cursor: int, stop: int, limit: int, fetch: FetchBackward,
                         emit: Emit, should_stop: Callable[[], bool], outcome: SeriesOutcome) -> None:
    """Newest first from ``stop`` down to ``cursor``; emitted once, in time order, so that the
    HISTORY checkpoint never moves past rows not fetched yet."""
    found: list[Any] = []
    after = stop
    while after > cursor:
        if should_stop():
            outcome.error = "interrupted by shutdown"
            return
        parsed, served = await fetch(after, limit)
        _count(series, parsed, outcome)
        older = [p for p in parsed.points if p.timestamp < after]
        found += [p for p in older if p.timestamp >= cursor]
        if not older or served < limit:
            break   # nothing older is served
        after = older[0].timestamp
    found.sort()
    if found:
        await emit(series, found)
        outcome.candles += len(found)


def _count(series: SeriesKey, parsed: ParsedPoints, outcome: SeriesOutcome) -> None:
    outcome.pages += 1
    if parsed.rejected:
        outcome.rejected += len(parsed.rejected)
        log_point_rejections(series, parsed)


def _report_unavailable(outcome: SeriesOutcome, start: int, end: int) -> None:
    if end <= start:
        return
    outcome.unavailable.append((start, end))
    series = outcome.series
    log.warning("%s: the exchange no longer serves %s before %s; [%s, %s) is unavailable", series,
                series.dataset, end, start, end,
                extra={"event": "history_unavailable", "symbol": series.symbol, "timeframe": series.timeframe,
                       "dataset": series.dataset, "unavailable_from": start, "unavailable_until": end})
