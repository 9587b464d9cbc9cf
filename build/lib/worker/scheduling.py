"""The LIVE loop's clock: a ``schedule.Scheduler`` per worker, ticks aligned to bar closes.

A plain ``every(60).seconds`` drifts by each job's runtime and fires at an arbitrary second;
when the interval divides a minute or an hour, ticks are pinned to wall-clock boundaries a
couple of seconds after bars close, so each cycle sees the bar that just closed.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import schedule

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2  # exchanges need a moment to publish a bar's final values


def schedule_live_jobs(scheduler: schedule.Scheduler, interval_s: int, job: Callable[[], None],
                       *, settle_s: int = SETTLE_SECONDS) -> list[schedule.Job]:
    """Register ``job`` every ``interval_s`` seconds, on wall-clock boundaries where possible."""
    safe = _once_per_tick(_never_raises(job), min_gap_s=interval_s / 2)
    if 60 % interval_s == 0:
        return [scheduler.every().minute.at(f":{(k * interval_s + settle_s) % 60:02d}").do(safe)
                for k in range(60 // interval_s)]
    if interval_s % 60 == 0 and 3600 % interval_s == 0:
        minutes = interval_s // 60
        return [scheduler.every().hour.at(f"{k * minutes:02d}:{settle_s:02d}").do(safe)
                for k in range(60 // minutes)]
    return [scheduler.every(interval_s).seconds.do(safe)]


def _never_raises(job: Callable[[], None]) -> Callable[[], None]:
    """``schedule`` lets a job's exception escape ``run_pending``; a LIVE worker must go on."""
    def run() -> None:
        try:
            job()
        except Exception as exc:
            log.exception("LIVE cycle failed: %s", exc, extra={"event": "cycle_error"})
    run.__name__ = getattr(job, "__name__", "live_cycle")
    return run


def _once_per_tick(job: Callable[[], None], *, min_gap_s: float,
                   clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """Skip ticks that came due while the previous cycle ran long (an outage's retries).

    With one ``schedule`` job per tick, a cycle that overran several ticks would otherwise be
    followed by all the missed ones back to back, each fetching the same bars again.
    """
    last_start: list[float] = []

    def run() -> None:
        now = clock()
        if last_start and now - last_start[0] < min_gap_s:
            return
        last_start[:] = [now]
        job()
    run.__name__ = getattr(job, "__name__", "live_cycle")
    return run


def run_until(scheduler: schedule.Scheduler, should_stop: Callable[[], bool],
              wait: Callable[[float], None], *, poll_s: float = 0.5) -> None:
    """Run due jobs until told to stop, waking at least every ``poll_s`` to check."""
    while not should_stop():
        scheduler.run_pending()
        idle = scheduler.idle_seconds
        wait(poll_s if idle is None else min(max(idle, 0.0), poll_s))
