"""Per-series freshness for /healthz (LIVE): which series have not been stored for
``stale_after_intervals`` polling intervals, and which exchanges have nothing fresh at all.

A series that has never been stored counts from its worker's first start, so a collector
that just booted is not stale before it had the chance to be fresh.
"""

from __future__ import annotations

from typing import Any, Iterable

from core import datasets
from supervisor.telemetry import SeriesKey3, plan_keys
from supervisor.workers import WorkerHandle


def watched_series(worker: WorkerHandle) -> list[SeriesKey3]:
    """The series the worker said it collects (universe and shard resolved), else the
    configured ones, and any other it reported."""
    if worker.series_plan is not None:
        owned = plan_keys(worker.series_plan)
    else:
        owned = [(s.symbol, s.timeframe, s.dataset)
                 for s in datasets.configured_series(worker.exchange_id, worker.spec.exchange)]
    return list(dict.fromkeys([*owned, *worker.telemetry.series]))


def series_freshness(worker: WorkerHandle, now: float, stale_after_s: float) -> list[dict[str, Any]]:
    since = worker.telemetry.watch_since if worker.telemetry.watch_since is not None else now
    known = worker.telemetry.series
    report = []
    for symbol, timeframe, dataset in watched_series(worker):
        last_success = known.get((symbol, timeframe, dataset), (None, None))[0]
        reference = last_success if last_success is not None else since
        report.append({"symbol": symbol, "timeframe": timeframe, "dataset": dataset,
                       "last_success": last_success,
                       "last_success_age_s": None if last_success is None else round(now - last_success, 1),
                       "stale": now - reference > stale_after_s})
    return report


def add_freshness(snapshot: dict[str, Any], workers: Iterable[WorkerHandle], now: float,
                  stale_after_s: float) -> bool:
    """Add each worker's series and the stale ones to ``snapshot``; True when some exchange
    has every series stale (the collector is then unhealthy)."""
    stale_everywhere = False
    stale_list = []
    for worker in workers:
        series = series_freshness(worker, now, stale_after_s)
        stale = [s for s in series if s["stale"]]
        entry = snapshot["workers"][worker.exchange_id]
        entry["series"] = series
        entry["stale_series"] = len(stale)
        entry["all_series_stale"] = bool(series) and len(stale) == len(series)
        stale_everywhere |= entry["all_series_stale"]
        stale_list += [{"exchange": worker.exchange_id, "symbol": s["symbol"], "timeframe": s["timeframe"],
                        "dataset": s["dataset"], "last_success": s["last_success"]} for s in stale]
    snapshot["stale_series"] = stale_list
    snapshot["stale_after_s"] = stale_after_s
    return stale_everywhere
