"""The LIVE loop's ticks: aligned to bar closes, one cycle per tick, never crashing."""

from __future__ import annotations

import datetime as dt

import schedule

from worker.scheduling import _once_per_tick, schedule_live_jobs


def test_ticks_align_to_the_minute_a_moment_after_bars_close() -> None:
    scheduler = schedule.Scheduler()
    jobs = schedule_live_jobs(scheduler, 15, lambda: None)
    assert sorted(j.at_time.second for j in jobs) == [2, 17, 32, 47]
    hourly = schedule_live_jobs(schedule.Scheduler(), 900, lambda: None)
    assert sorted((j.at_time.minute, j.at_time.second) for j in hourly) == [(0, 2), (15, 2), (30, 2), (45, 2)]
    odd = schedule_live_jobs(schedule.Scheduler(), 7, lambda: None)
    assert len(odd) == 1 and odd[0].interval == 7 and odd[0].unit == "seconds"


def test_a_failing_cycle_is_logged_and_the_loop_goes_on(caplog) -> None:
    scheduler = schedule.Scheduler()
    calls = []

    def cycle():
        calls.append(1)
        raise RuntimeError("boom")
    [job, *_] = schedule_live_jobs(scheduler, 60, cycle)
    job.next_run = dt.datetime.now() - dt.timedelta(seconds=1)
    scheduler.run_pending()  # must not raise
    assert calls == [1] and "boom" in caplog.text


def test_ticks_missed_during_a_long_cycle_do_not_run_back_to_back() -> None:
    now = {"t": 0.0}
    runs = []
    job = _once_per_tick(lambda: runs.append(now["t"]), min_gap_s=2.5, clock=lambda: now["t"])
    job()
    now["t"] = 30.0  # the cycle overran: several ticks are due at once
    job(), job(), job()
    now["t"] = 35.0
    job()
    assert runs == [0.0, 30.0, 35.0]
