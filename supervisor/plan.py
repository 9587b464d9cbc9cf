"""``--mode plan``: the series each shard collects, one JSON line each, on stdout.

The workers resolve the universe (they have ccxt) and report a ``SeriesPlan``; the
supervisor only prints what they reported. Logs go to stderr in this mode, so stdout is
nothing but the plan.
"""

from __future__ import annotations

import json
import sys
from typing import Iterable, TextIO

from core import exit_codes
from core.protocol import WorkerState
from core.series import series_key
from core.shards import Shard
from supervisor.workers import WorkerHandle


def plan_lines(workers: Iterable[WorkerHandle], shard: Shard | None) -> list[str]:
    lines = []
    for worker in workers:
        plan = worker.series_plan
        for series in (series_key(*s) for s in (plan.series if plan is not None else [])):
            lines.append(json.dumps({"exchange": series.exchange, "symbol": series.symbol,
                                     "dataset": series.dataset, "timeframe": series.timeframe,
                                     "shard": shard.index if shard else 0}))
    return lines


def print_plan(workers: list[WorkerHandle], shard: Shard | None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    for line in plan_lines(workers, shard):
        out.write(line + "\n")
    out.flush()
    complete = all(w.state == WorkerState.DONE and w.series_plan is not None for w in workers)
    return exit_codes.OK if complete else exit_codes.HISTORY_INCOMPLETE
