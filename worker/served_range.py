"""Where an exchange's history begins, found from its answers rather than from a table.

Two ways an exchange says it keeps only its recent bars, both seen on the first page:

* it refuses a ``since`` too far back (Gate: HTTP 400 "Candlestick too long ago. Maximum
  10000 points ago are allowed"): the oldest ``since`` it accepts is found by bisection,
  a dozen small requests for months of 1m bars;
* it answers an old ``since`` with bars that begin where its newest N bars begin, N being
  the page size ccxt gives for it (Hyperliquid keeps its newest 5,000 bars and ccxt's
  ``features`` say 5,000; Kraken its newest 720, ccxt 720).

Either way the part before is reported as unavailable, never taken for a stretch without
trades or left as a failure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.timeframes import bar_start, timeframe_ms
from worker.errors import ExchangeRejected, UnsupportedSeries

if TYPE_CHECKING:
    from core.series import SeriesKey
    from worker.backfill import SeriesOutcome
    from worker.exchange import ExchangeClient

log = logging.getLogger(__name__)

# A first bar this close to where the exchange's newest ``window`` bars begin is that
# beginning (the window moves while the request is on its way; its first minutes can be quiet).
WINDOW_SLACK_BARS = 10


def refused_for_age(exc: Exception) -> bool:
    """A refusal that asking for a later ``since`` could avoid (not an unknown symbol)."""
    return isinstance(exc, ExchangeRejected) and not isinstance(exc, UnsupportedSeries)


async def oldest_accepted_since(client: ExchangeClient, series: SeriesKey, refused: int,
                                now_ms: int) -> int | None:
    """The oldest bar-aligned ``since`` after ``refused`` the exchange answers, or None when it
    refuses the most recent one too (then the refusal is not about age)."""
    tf = series.timeframe
    step = timeframe_ms(tf)
    low, high = refused, bar_start(now_ms, tf)
    if not await _accepted(client, series, high):
        return None
    while high - low > step:
        middle = bar_start(low + (high - low) // 2, tf)
        if middle <= low:
            middle = low + step
        if await _accepted(client, series, middle):
            high = middle
        else:
            low = middle
    return high


async def _accepted(client: ExchangeClient, series: SeriesKey, since: int) -> bool:
    try:
        await client.fetch_ohlcv(series.symbol, series.timeframe, since, 1)
    except ExchangeRejected as exc:
        if not refused_for_age(exc):
            raise
        return False
    return True


def starts_at_retention_floor(first: int, now_ms: int, window: int | None, timeframe: str) -> bool:
    """Whether a first bar is where an exchange keeping only its newest ``window`` bars begins."""
    if not window:
        return False
    step = timeframe_ms(timeframe)
    floor = bar_start(now_ms, timeframe) - (window - 1) * step
    return floor - step <= first <= floor + WINDOW_SLACK_BARS * step


def report_unavailable(outcome: SeriesOutcome, start: int, end: int) -> None:
    """Add [start, end) to the outcome's unavailable ranges (joined to an adjacent one) and log it."""
    end = min(end, outcome.end_ms)
    if end <= start:
        return
    if outcome.unavailable and outcome.unavailable[-1][1] >= start:
        start = outcome.unavailable[-1][0]
        outcome.unavailable[-1] = (start, max(end, outcome.unavailable[-1][1]))
    else:
        outcome.unavailable.append((start, end))
    series = outcome.series
    log.warning("%s: the exchange serves no candles before %s; [%s, %s) is unavailable", series, end,
                start, end, extra={"event": "history_unavailable", "symbol": series.symbol,
                                   "timeframe": series.timeframe, "unavailable_from": start,
                                   "unavailable_until": end})
