"""How far a HISTORY run is, in grid bars over all its series, for the supervisor.

The supervisor draws a progress bar from it on a terminal and serves it as the HISTORY
progress ratio and ETA. A series counts the bars up to its newest fetched candle as done
(a stretch without trades counts once a later candle arrives), and all of its bars once
it has ended.
"""

from __future__ import annotations

from typing import Any

from core.series import Candle, SeriesKey
from core.telemetry import HistoryProgress
from core.timeframes import bars_between, next_bar_start


def _grid(series: SeriesKey) -> str:
    """The grid progress counts on: the series' bars or periods; funding rates have no grid of
    their own (their interval is the exchange's), so they count the hours covered."""
    return series.timeframe or "1h"


class ProgressTally:
    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms
        self._total: dict[SeriesKey, int] = {}
        self._bars_total = 0
        self._done: dict[SeriesKey, int] = {}
        self._bars_done = 0
        self._series_done = 0
        self._candles = 0

    def begin(self, series: SeriesKey, from_ms: int) -> None:
        """``series`` starts at ``from_ms``: what lies before it is done already."""
        total = bars_between(self.start_ms, self.end_ms, _grid(series))
        self._bars_total += total - self._total.get(series, 0)
        self._total[series] = total
        self._set_done(series, bars_between(self.start_ms, min(from_ms, self.end_ms), _grid(series)))

    def fetched(self, series: SeriesKey, candles: list[Candle] | list[Any]) -> None:
        self._candles += len(candles)
        if candles:
            reached = min(next_bar_start(candles[-1].timestamp, _grid(series)), self.end_ms)
            self._set_done(series, bars_between(self.start_ms, reached, _grid(series)))

    def ended(self, series: SeriesKey) -> None:
        self._series_done += 1
        self._set_done(series, self._total.get(series, 0))

    def _set_done(self, series: SeriesKey, done: int) -> None:
        previous = self._done.get(series, 0)
        if done > previous:
            self._done[series] = done
            self._bars_done += done - previous

    def snapshot(self) -> HistoryProgress:
        return HistoryProgress(self._bars_total, self._bars_done, len(self._total),
                               self._series_done, self._candles)
