"""What the supervisor knows of one worker beyond its process: requests, spool, HISTORY
progress and per-series freshness, as the worker last reported them.

Kept across the worker's restarts: counters add the totals of earlier runs, so they never go
backwards, and a series' last success survives a crash of its worker.

The health server's thread reads this while the main loop updates it: the series map is
replaced, never changed in place, so a reader always sees one consistent map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.protocol import Heartbeat, SeriesPlan
from core.telemetry import DATASET_OHLCV, HistoryProgress, RequestStats, SeriesFreshness

# (symbol, timeframe, dataset) -> (last success epoch s or None, newest stored closed bar ms or None)
SeriesKey3 = tuple[str, str, str]
SeriesState = tuple[float | None, int | None]


@dataclass
class WorkerTelemetry:
    requests: RequestStats = field(default_factory=RequestStats)
    spool_rows: int = 0
    history: HistoryProgress | None = None
    series: dict[SeriesKey3, SeriesState] = field(default_factory=dict)
    watch_since: float | None = None    # the first start of the worker: staleness counts from it
    _carried: RequestStats = field(default_factory=RequestStats)
    _this_run: RequestStats = field(default_factory=RequestStats)
    # HISTORY: the first progress seen (time, bars done), from which the rate and ETA follow.
    _history_origin: tuple[float, int] | None = None
    _history_at: float | None = None

    def on_heartbeat(self, heartbeat: Heartbeat, now: float) -> None:
        if heartbeat.requests is not None:
            self._this_run = heartbeat.requests
            self.requests = self._carried.plus(heartbeat.requests)
        self.spool_rows = heartbeat.spool_rows
        if heartbeat.history is not None:
            self.history, self._history_at = heartbeat.history, now
            if self._history_origin is None:
                self._history_origin = (now, heartbeat.history.bars_done)

    def on_freshness(self, message: SeriesFreshness) -> None:
        updated = dict(self.series)
        for symbol, timeframe, dataset, last_success, newest_closed in message.entries:
            old_success, old_newest = updated.get((symbol, timeframe, dataset), (None, None))
            updated[(symbol, timeframe, dataset)] = (last_success or old_success,
                                                     newest_closed if newest_closed is not None else old_newest)
        self.series = updated

    def on_plan(self, plan: SeriesPlan) -> None:
        """The worker's series changed (universe refresh, shard): forget the ones it dropped,
        so that a symbol that left is neither served nor reported stale."""
        owned = set(plan_keys(plan))
        self.series = {key: state for key, state in self.series.items() if key in owned}

    def on_exit(self) -> None:
        """The worker process ended: its request counts become the base of the next run."""
        self._carried = self._carried.plus(self._this_run)
        self._this_run = RequestStats()

    def history_eta_s(self) -> float | None:
        """Seconds to the end of the HISTORY run at the rate seen so far; None before a rate exists."""
        if self.history is None or self._history_origin is None or self._history_at is None:
            return None
        started, done_then = self._history_origin
        elapsed, gained = self._history_at - started, self.history.bars_done - done_then
        if self.history.bars_done >= self.history.bars_total:
            return 0.0
        if elapsed <= 0 or gained <= 0:
            return None
        return (self.history.bars_total - self.history.bars_done) * elapsed / gained


def plan_keys(plan: SeriesPlan) -> list[SeriesKey3]:
    """(symbol, timeframe, dataset) of each series a worker collects."""
    return [(s[1], s[2], s[3] if len(s) > 3 else DATASET_OHLCV) for s in plan.series]
