"""The fault soak (bench/soak.py) for two minutes: the CI-sized run of the 60-minute bench.

Every fault kind comes up at least once (the schedule deals a shuffled deck of all seven).
"""

from __future__ import annotations

from datetime import datetime

import pytest


@pytest.mark.slow
def test_two_minute_fault_soak_loses_nothing_and_memory_stays_flat(tmp_path) -> None:
    from bench.sim import SimProcess
    from bench.soak import FAULTS, run_soak

    sim = SimProcess(0)
    try:
        sim.reset(latency=0.02)
        result = run_soak(sim, tmp_path, minutes=2, seed=7, fault_every_s=12)
    finally:
        sim.close()
    assert {kind for _, kind, _ in result.faults} == set(FAULTS), result.faults
    assert result.supervisor_exit == 0
    start, end = (datetime.fromisoformat(stamp) for stamp in result.audit_range)
    assert (end - start).total_seconds() >= 2 * 60, result.audit_range    # AUDIT saw the whole soak
    assert result.audit_exit == 0 and result.repairable == 0, result.audit_range
    assert result.duplicate_keys == 0 and result.rows > 0
    assert result.uss_ratio("supervisor") < 1.5, (result.uss_start, result.uss_end)
