"""HISTORY: page through one series over [start, end) and hand closed bars to the writer.

Pagination moves a ``since`` cursor forward from the newest bar received. It stops at the end
of the range, on an empty page, or on a page that brings nothing new (an exchange that ignores
``since`` would otherwise be asked the same page forever). Where an exchange serves only its
most recent candles (Kraken: the last 720 whatever ``since`` says), the part of the range it
cannot serve is reported as unavailable, never silently treated as covered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from core.protocol import SeriesStatus
from core.series import Candle, SeriesKey
from core.timeframes import bar_start, bars_between, has_fixed_length, next_bar_start, timeframe_ms
from worker.candles import ParsedBatch, log_rejections, parse_candles
from worker.errors import CollectorError, ExchangeRejected
from worker.exchange import ExchangeClient
from worker.served_range import (
    oldest_accepted_since,
    refused_for_age,
    report_unavailable,
    starts_at_retention_floor,
)

log = logging.getLogger(__name__)

EmitCandles = Callable[[SeriesKey, list[Candle]], Awaitable[None]]
PROGRESS_EVERY_SECONDS = 5.0


@dataclass
class SeriesOutcome:
    """How a backfill of one series ended."""

    series: SeriesKey
    start_ms: int
    end_ms: int
    candles: int = 0
    rejected: int = 0
    pages: int = 0
    # Where the exchange said it has nothing to serve (not a failure of ours).
    unavailable: list[tuple[int, int]] = field(default_factory=list)
    # Everything before this is either stored, a no-trade gap, or unavailable.
    covered_until: int = 0
    error: str | None = None

    @property
    def status(self) -> SeriesStatus:
        if self.error is not None:
            return SeriesStatus.FAILED
        return SeriesStatus.PARTIAL_UNAVAILABLE if self.unavailable else SeriesStatus.COMPLETE


class ProgressReporter:
    """Logs share done, candles/s and ETA every few seconds for one series."""

    def __init__(self, outcome: SeriesOutcome, clock: Callable[[], float] = time.monotonic) -> None:
        self._outcome = outcome
        self._clock = clock
        self._started = clock()
        self._last = self._started

    def page_done(self) -> None:
        now = self._clock()
        if now - self._last < PROGRESS_EVERY_SECONDS:
            return
        self._last = now
        o = self._outcome
        span = max(1, o.end_ms - o.start_ms)
        share = min(1.0, max(0.0, (o.covered_until - o.start_ms) / span))
        elapsed = max(1e-9, now - self._started)
        rate = o.candles / elapsed
        eta = elapsed * (1 - share) / share if share > 0 else None
        log.info("%s %.1f%% done, %.0f candles/s", o.series, share * 100, rate,
                 extra={"event": "history_progress", "symbol": o.series.symbol,
                        "timeframe": o.series.timeframe, "progress_pct": round(share * 100, 1),
                        "candles": o.candles, "candles_per_s": round(rate, 1),
                        "eta_s": None if eta is None else round(eta, 1)})


async def backfill_series(
    client: ExchangeClient,
    series: SeriesKey,
    start_ms: int,
    end_ms: int,
    *,
    page_limit: int,
    emit: EmitCandles,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    concurrency: int = 1,
) -> SeriesOutcome:
    """Fetch every closed bar of ``series`` opening in [start, end); never raises for exchange trouble.

    With ``concurrency`` > 1, once the first page shows that the exchange serves exactly the
    page asked for (it starts at ``since`` and is full), the rest of the range is cut into
    windows of one page each, fetched several at a time: one series can then use the whole
    rate limit instead of waiting a round trip per page.
    """
    tf = series.timeframe
    step = timeframe_ms(tf)
    first_bar = bar_start(start_ms, tf)
    if first_bar < start_ms:
        first_bar = next_bar_start(first_bar, tf)
    outcome = SeriesOutcome(series, start_ms, end_ms, covered_until=first_bar)
    progress = ProgressReporter(outcome, clock)
    since = first_bar
    served_limit: int | None = None  # learnt from a page cut short: what the exchange serves

    def limit_at(cursor: int) -> int:
        """The page to ask for from ``cursor``: what the exchange serves there, at most ours."""
        if served_limit is not None:
            return served_limit
        return min(page_limit, client.max_ohlcv_limit(series.symbol, tf, cursor) or page_limit)

    try:
        now_ms = await client.exchange_now_ms()
        while since < end_ms:
            if should_stop():
                outcome.error = "interrupted by shutdown"
                return outcome
            limit = limit_at(since)
            try:
                raw, batch = await _fetch_page(client, series, since, limit, outcome)
            except ExchangeRejected as exc:
                # Refused, perhaps for asking too far back (Gate): find where it begins.
                served_from = await oldest_accepted_since(client, series, since, now_ms) \
                    if refused_for_age(exc) and outcome.pages <= 1 + len(outcome.unavailable) else None
                if served_from is None or served_from <= since:
                    raise
                report_unavailable(outcome, since, served_from)
                since = outcome.covered_until = min(served_from, end_ms)
                continue
            fresh = [c for c in batch.candles if c.timestamp >= since]
            if not fresh:
                break  # an empty page, or one with nothing after the cursor: no progress possible
            window = client.max_ohlcv_limit(series.symbol, tf, since)
            if served_limit is None and _served_fewer_from_the_front(raw, fresh, since, limit, now_ms, window, tf):
                # Newest-first exchanges (OKX's history endpoint serves 100 of the 300 ccxt
                # asks for) drop the oldest bars of a page. Ask again in pages they serve whole.
                served_limit = limit = len(raw)
                log.info("%s: the exchange serves %d candles per page; paging with that", series,
                         limit, extra={"event": "history_page_limit_adjusted", "symbol": series.symbol,
                                       "timeframe": tf, "limit": limit})
                continue
            if outcome.pages == 1:
                _note_unserved_start(outcome, since, fresh, now_ms, step, window)
            cutoff = min(end_ms, bar_start(now_ms, tf))  # bars opening before it are closed
            closed = [c for c in fresh if c.timestamp < cutoff]
            if closed:
                await emit(series, closed)
                outcome.candles += len(closed)
            page_since, newest = since, fresh[-1].timestamp
            since = next_bar_start(newest, tf)
            outcome.covered_until = min(since, end_ms)
            if next_bar_start(newest, tf) > now_ms:
                break  # reached the open bar: nothing newer exists yet
            progress.page_done()
            now_ms = await client.exchange_now_ms()
            if concurrency > 1 and _pages_are_exact(raw, fresh, page_since, limit, tf):
                await _backfill_in_windows(client, series, since, min(end_ms, bar_start(now_ms, tf)),
                                           limit_at, concurrency, emit, outcome, progress, should_stop)
                break
    except CollectorError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        log.error("backfill of %s stopped at %s: %s", series, outcome.covered_until, exc,
                  extra={"event": "history_series_error", "symbol": series.symbol,
                         "timeframe": tf, "error": str(exc)[:300]})
        return outcome
    outcome.covered_until = max(outcome.covered_until, min(end_ms, _closed_end(end_ms, now_ms, tf)))
    return outcome


async def _fetch_page(client: ExchangeClient, series: SeriesKey, since: int, limit: int,
                      outcome: SeriesOutcome) -> tuple[list, ParsedBatch]:
    """One page, validated; its rejected bars logged and counted on the outcome."""
    raw = await client.fetch_ohlcv(series.symbol, series.timeframe, since, limit)
    outcome.pages += 1
    batch = parse_candles(raw, series.timeframe)
    outcome.rejected += len(batch.rejected)
    log_rejections(series, batch)
    return raw, batch


def _pages_are_exact(raw: list, fresh: list[Candle], since: int, limit: int, timeframe: str) -> bool:
    """Whether pages can be computed up front: the exchange served the ``limit`` bars from
    ``since``, first to last. Exchanges that serve a time window (KuCoin, Coinbase, Gate, Bybit
    with an end bound) leave out minutes without trades, so the page may hold fewer rows; its
    first and last bars show the window was served whole."""
    if not has_fixed_length(timeframe) or len(raw) > limit or fresh[0].timestamp != since:
        return False
    return len(raw) == limit or fresh[-1].timestamp == since + (limit - 1) * timeframe_ms(timeframe)


async def _backfill_in_windows(client: ExchangeClient, series: SeriesKey, since: int, stop_at: int,
                               limit_at: Callable[[int], int], concurrency: int, emit: EmitCandles,
                               outcome: SeriesOutcome, progress: ProgressReporter,
                               should_stop: Callable[[], bool]) -> None:
    """Fetch [since, stop_at) in windows of one page each, ``concurrency`` in flight, in order.

    A window is as wide as the page the exchange serves from its start (``limit_at``): OKX
    serves 100 bars a page from its archive and 300 near the present.

    The next window is asked for as soon as the oldest one arrives (a sliding window: rounds
    that wait for their slowest page would leave the rate limit idle meanwhile). Windows are
    emitted in time order, so the series' covered_until (and the HISTORY checkpoint built on
    it) never passes a window still in flight.
    """
    step = timeframe_ms(series.timeframe)
    next_start = since
    in_flight: deque[tuple[int, asyncio.Future[list[Candle]]]] = deque()
    try:
        while True:
            while len(in_flight) < concurrency and next_start < stop_at and not should_stop():
                limit = limit_at(next_start)
                end = min(next_start + limit * step, stop_at)
                in_flight.append((end, asyncio.ensure_future(
                    _fetch_window(client, series, next_start, end, limit, outcome))))
                next_start = end
            if not in_flight:
                break
            end, window = in_flight.popleft()
            candles = await window
            if candles:
                await emit(series, candles)
                outcome.candles += len(candles)
            outcome.covered_until = end
            progress.page_done()
    finally:
        for _, window in in_flight:  # after an error: the windows behind it are not needed
            window.cancel()
        await asyncio.gather(*(window for _, window in in_flight), return_exceptions=True)
    if outcome.covered_until < stop_at:
        outcome.error = "interrupted by shutdown"


async def _fetch_window(client: ExchangeClient, series: SeriesKey, start: int, end: int, limit: int,
                        outcome: SeriesOutcome) -> list[Candle]:
    """Every bar in [start, end), asking again from the newest one while a page stops short.

    A page can end before its window does: the exchange cut it (a repeated row made it one
    too long), or the window has a stretch without trades. Asking from the newest bar until
    an answer brings nothing new inside the window tells the two apart.
    """
    tf = series.timeframe
    found: list[Candle] = []
    cursor = start
    while cursor < end:
        _, batch = await _fetch_page(client, series, cursor, limit, outcome)
        # An exchange that skips a no-trade stretch fills the page from later bars: clip.
        inside = [c for c in batch.candles if cursor <= c.timestamp < end]
        if not inside:
            break
        found.extend(inside)
        cursor = next_bar_start(inside[-1].timestamp, tf)
    return found


def _served_fewer_from_the_front(raw: list, fresh: list[Candle], since: int, limit: int,
                                 now_ms: int, window: int | None, timeframe: str) -> bool:
    """A short page that starts after the cursor while newer data exists: bars were cut.

    A page that starts where the exchange's newest ``window`` bars begin is that window
    (Kraken's 720, fewer where minutes had no trade, the newest of them perhaps quiet too):
    not a cut page, and the range before it is unavailable."""
    short = 0 < len(raw) < limit
    starts_late = fresh[0].timestamp > since
    more_after = fresh[-1].timestamp + 2 * timeframe_ms(timeframe) < now_ms
    return (short and starts_late and more_after
            and not starts_at_retention_floor(fresh[0].timestamp, now_ms, window, timeframe))


def _closed_end(end_ms: int, now_ms: int, timeframe: str) -> int:
    """Bars opening before this instant are closed on the exchange's clock."""
    return min(end_ms, bar_start(now_ms, timeframe))


def _note_unserved_start(outcome: SeriesOutcome, since: int, fresh: list[Candle], now_ms: int,
                         step: int, window: int | None) -> None:
    """Record the head of the range the exchange would not serve.

    A first page that starts after ``since`` and already reaches the present, or starts where
    the exchange's newest ``window`` bars begin, means the exchange answered with its most
    recent bars instead of what was asked for: what lies between ``since`` and the first bar is
    not served, whatever it contains. A first page that starts late elsewhere is an ordinary
    stretch without trades.
    """
    first, newest = fresh[0].timestamp, fresh[-1].timestamp
    tf = outcome.series.timeframe
    recent_only = newest + 2 * step >= now_ms or starts_at_retention_floor(first, now_ms, window, tf)
    if first > since and recent_only and bars_between(since, first, tf) > 1:
        report_unavailable(outcome, since, first)
