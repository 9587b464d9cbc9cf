"""LIVE's request budget: do a worker's series fit in one interval at the exchange's pace?

ccxt's throttler spaces requests ``rateLimit`` x cost apart (Binance klines: 20 ms, so about
3,000 a minute per IP). A LIVE cycle sends one OHLCV request per series; when they take
longer than the interval, cycles overrun and the exchange's limit is the real interval. The
worker then covers a fair share of the series per cycle, in turn, so none starves, and asks
each series for enough bars to cover the cycles it sat out (its closed bars are still stored).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
# Leave room for the clock sample, repairs and the universe refresh within an interval.
HEADROOM = 0.9


@dataclass(frozen=True)
class RateBudget:
    series: int
    seconds_per_request: float
    interval_s: float

    @property
    def need_s(self) -> float:
        """Request time one cycle over every series needs at the exchange's pace."""
        return self.series * self.seconds_per_request

    @property
    def ratio(self) -> float:
        return self.need_s / self.interval_s

    @property
    def fits(self) -> bool:
        return self.need_s <= self.interval_s * HEADROOM

    @property
    def per_cycle(self) -> int:
        """Series one cycle covers: all when they fit, else what the interval allows (>= 1)."""
        if self.fits or self.seconds_per_request <= 0:
            return self.series
        return max(1, min(self.series, math.floor(self.interval_s * HEADROOM / self.seconds_per_request)))

    @property
    def cycles_per_round(self) -> int:
        """Cycles until every series was polled once."""
        return max(1, math.ceil(self.series / max(1, self.per_cycle)))

    def shards_needed(self) -> int:
        return max(1, math.ceil(self.need_s / (self.interval_s * HEADROOM)))

    def log_exceeded(self, exchange_id: str) -> None:
        log.warning(
            "%s: %d series need %.1f s of requests per %.0f s interval at the exchange's pace "
            "(%.0f ms per request), %.0f%% of the interval; polling %d series per cycle in turn, "
            "each every %d cycles. Fixes: more shards over more egress IPs (--shard I/N with "
            "settings.shard_by: series; about %d needed), or a longer update_interval_seconds "
            "(at least %.0f s)", exchange_id, self.series, self.need_s, self.interval_s,
            self.seconds_per_request * 1000, self.ratio * 100, self.per_cycle, self.cycles_per_round,
            self.shards_needed(), math.ceil(self.need_s / HEADROOM),
            extra={"event": "rate_budget_exceeded", "series": self.series,
                   "seconds_per_request": round(self.seconds_per_request, 4),
                   "need_s": round(self.need_s, 2), "interval_s": self.interval_s,
                   "ratio": round(self.ratio, 3), "per_cycle": self.per_cycle,
                   "cycles_per_round": self.cycles_per_round,
                   "fixes": [f"more shards over more egress IPs (about {self.shards_needed()})",
                             f"update_interval_seconds >= {math.ceil(self.need_s / HEADROOM)}"]})


class Rotation:
    """Which series a cycle covers: a window that moves on every cycle, wrapping around."""

    def __init__(self) -> None:
        self._offset = 0

    def take(self, items: Sequence[T], count: int) -> list[T]:
        if count >= len(items):
            self._offset = 0
            return list(items)
        start = self._offset % len(items)
        chosen = [items[(start + i) % len(items)] for i in range(count)]
        self._offset = (start + count) % len(items)
        return chosen
