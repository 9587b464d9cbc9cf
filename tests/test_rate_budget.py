"""The LIVE request budget and the rotation that keeps every series polled."""

from __future__ import annotations

import logging

from worker.rate_budget import RateBudget, Rotation


def test_fits_within_the_interval() -> None:
    budget = RateBudget(series=1200, seconds_per_request=0.02, interval_s=60)
    assert budget.need_s == 24 and budget.ratio == 0.4 and budget.fits
    assert budget.per_cycle == 1200 and budget.cycles_per_round == 1


def test_over_budget_caps_a_cycle_and_names_both_fixes(caplog) -> None:
    budget = RateBudget(series=3000, seconds_per_request=0.02, interval_s=30)
    assert budget.ratio == 2 and not budget.fits
    assert budget.per_cycle == 1350 and budget.cycles_per_round == 3 and budget.shards_needed() == 3
    with caplog.at_level(logging.WARNING):
        budget.log_exceeded("binance")
    record = caplog.records[-1]
    assert record.event == "rate_budget_exceeded" and record.need_s == 60 and record.ratio == 2
    assert "egress IP" in record.getMessage() and "update_interval_seconds" in record.getMessage()


def test_rotation_polls_every_series_in_turn() -> None:
    items, rotation, seen = list(range(10)), Rotation(), []
    for _ in range(10):
        seen.append(rotation.take(items, 3))
    counts = [sum(x in cycle for cycle in seen) for x in items]
    assert max(counts) - min(counts) <= 1 and min(counts) >= 2  # no series starves
    assert all(len(set(c)) == 3 for c in seen)
    assert Rotation().take(items, 20) == items
