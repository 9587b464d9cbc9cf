"""What a worker measures for the supervisor's /metrics and /healthz, as plain picklable data.

Counters are cumulative since the worker process started: a heartbeat carries the whole
total, so a lost message loses nothing, and the supervisor adds the totals of earlier runs
of the same worker so its counters never go backwards. Per-series freshness travels as
tuples of plain values: 3,000 series pickle in about a millisecond, once per LIVE cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Upper bounds (seconds) of the request-latency histogram: from a loopback answer to a
# request ccxt gives up on (its default timeout is 10 s).
LATENCY_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# How an HTTP request to the exchange ended (the ``outcome`` label).
OUTCOMES: tuple[str, ...] = ("ok", "rate_limited", "network_error", "rejected")
# Answers that mean "slow down" (429) or "you are banned for a while" (418, Binance).
THROTTLE_STATUSES: tuple[str, ...] = ("429", "418")

DATASET_OHLCV = "ohlcv"


@dataclass(frozen=True)
class RequestStats:
    """HTTP requests to the exchange since the worker started: outcomes, throttles, latency."""

    outcomes: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)       # HTTP status -> answers
    # Per bucket of LATENCY_BUCKETS, then +Inf: requests that took at most that long
    # (not cumulative; the exposition sums them).
    latency_counts: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    latency_sum: float = 0.0

    def plus(self, other: RequestStats) -> RequestStats:
        """Totals of two runs of one worker."""
        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}
        return RequestStats(add(self.outcomes, other.outcomes), add(self.throttled, other.throttled),
                            tuple(x + y for x, y in zip(self.latency_counts, other.latency_counts)),
                            self.latency_sum + other.latency_sum)


@dataclass(frozen=True)
class HistoryProgress:
    """How far a worker's HISTORY run is, in bars of the grid (all its series together)."""

    bars_total: int
    bars_done: int
    series_total: int
    series_done: int
    candles: int = 0

    @property
    def ratio(self) -> float:
        return min(1.0, self.bars_done / self.bars_total) if self.bars_total else 1.0


# (symbol, timeframe, dataset, last_success epoch s or None, newest stored closed bar ms or None)
SeriesFreshnessEntry = tuple[str, str, str, float | None, int | None]


@dataclass(frozen=True)
class SeriesFreshness:
    """Per series of one worker: when it was last stored, and its newest stored closed bar.

    Sent at most once per LIVE cycle, with the series whose state changed.
    """

    entries: list[SeriesFreshnessEntry] = field(default_factory=list)
