"""LIVE freshness for the supervisor's /metrics and /healthz: when each series was last
stored, and the open time of its newest stored closed bar (or period).

Only what changed since the last report is sent, one message per cycle, so a worker with
thousands of series sends a few hundred bytes when little moved.
"""

from __future__ import annotations

from core.series import OHLCV, SeriesKey
from core.telemetry import SeriesFreshness
from core.timeframes import bar_start, next_bar_start


class LiveFreshness:
    def __init__(self) -> None:
        self._last_success: dict[SeriesKey, float] = {}
        self._newest_closed: dict[SeriesKey, int] = {}
        self._changed: set[SeriesKey] = set()

    def stored(self, series: SeriesKey, at: float | None, newest_closed_ms: int | None) -> None:
        """``series`` was stored at ``at`` (None: only its newest closed bar is news)."""
        if at is not None:
            self._last_success[series] = at
        if newest_closed_ms is not None and newest_closed_ms > self._newest_closed.get(series, -1):
            self._newest_closed[series] = newest_closed_ms
        self._changed.add(series)

    def found_in_store(self, series: SeriesKey, last_ms: int, now_ms: int) -> None:
        """The store's newest row of ``series`` opens at ``last_ms`` (read at start or repair)."""
        self.stored(series, None, newest_closed(series, last_ms, now_ms))

    def take_report(self) -> SeriesFreshness | None:
        """The series whose state changed since the last report; None when none did."""
        if not self._changed:
            return None
        entries = [(s.symbol, s.timeframe, s.dataset, self._last_success.get(s), self._newest_closed.get(s))
                   for s in self._changed]
        self._changed = set()
        return SeriesFreshness(entries)


def newest_closed(series: SeriesKey, last_ms: int, now_ms: int) -> int | None:
    """The newest closed period the store holds, given its newest row: a candle may have been
    stored while open (then the one before is the newest closed); funding and open-interest
    rows are facts once published; funding has no grid to lag behind (None)."""
    if series.dataset != OHLCV:
        return last_ms if series.timeframe else None
    if next_bar_start(last_ms, series.timeframe) <= now_ms:
        return last_ms
    return bar_start(last_ms - 1, series.timeframe)
