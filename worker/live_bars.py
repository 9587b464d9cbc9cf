"""LIVE: the previous (closed) and current (open) bar of a series, and which to write.

Which bar is closed is decided on the exchange's clock: ours may be seconds off, and a bar
called closed too early would be stored with values that still change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.series import Candle, SeriesKey
from core.timeframes import bar_start, next_bar_start, timeframe_ms


def live_fetch_limit(timeframe: str, interval_s: float) -> int:
    """The last two bars, or more when the interval spans several bars (e.g. 5 min of 1m bars).

    With an interval longer than a bar, two bars a cycle would skip the bars that closed
    in between.
    """
    return max(2, math.ceil(interval_s * 1000 / timeframe_ms(timeframe)) + 1)


@dataclass(frozen=True)
class LiveBars:
    closed: list[Candle] = field(default_factory=list)  # ascending; the last is "previous"
    current: Candle | None = None                        # the bar containing now, still changing

    @property
    def previous(self) -> Candle | None:
        return self.closed[-1] if self.closed else None


def classify_live_bars(candles: list[Candle], timeframe: str, now_ms: int) -> LiveBars:
    """Split an ascending answer of any length into closed bars and the open one.

    Handles exchanges that return only closed bars (current is None), more bars than asked,
    bars past now on the exchange's clock (ignored), or nothing at all.
    """
    open_bar = bar_start(now_ms, timeframe)
    closed, current = [], None
    for candle in candles:
        if candle.timestamp == open_bar:
            current = candle
        elif next_bar_start(candle.timestamp, timeframe) <= now_ms:
            closed.append(candle)
    return LiveBars(closed, current)


class LiveWritePolicy:
    """The open bar every cycle; a closed bar once, and again only if its values change.

    Writing the same closed bar every cycle would multiply rows (and streaming-insert cost)
    by the number of cycles per bar for no new information.
    """

    def __init__(self) -> None:
        self._closed_written: dict[SeriesKey, Candle] = {}

    def select(self, series: SeriesKey, bars: LiveBars) -> list[Candle]:
        last = self._closed_written.get(series)
        chosen = [c for c in bars.closed
                  if last is None or c.timestamp > last.timestamp or (c.timestamp == last.timestamp and c != last)]
        if bars.current is not None:
            chosen.append(bars.current)
        return chosen

    def written(self, series: SeriesKey, bars: LiveBars) -> None:
        """Call once the rows from :meth:`select` are stored."""
        if bars.previous is not None:
            self._closed_written[series] = bars.previous

    def forget(self, series: SeriesKey) -> None:
        """The series left the universe; if it comes back, it starts afresh."""
        self._closed_written.pop(series, None)

    def last_closed(self, series: SeriesKey) -> int | None:
        """Open time of the newest closed bar stored for ``series`` by this process, if any."""
        candle = self._closed_written.get(series)
        return candle.timestamp if candle is not None else None
