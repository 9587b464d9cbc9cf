"""The end of a HISTORY run: one summary line per series, and the exit code.

Exit 0 only when every series is covered, or its uncovered part is one the exchange cannot
serve (reported as such); otherwise exit 1, and the summary says which series and why.
"""

from __future__ import annotations

import logging
from typing import Iterable

from supervisor.workers import WorkerProcess
from worker.candles import SeriesKey
from worker.timefmt import iso_utc

log = logging.getLogger("supervisor.history")

COVERED = ("complete", "partial_unavailable")


def summarize_history(workers: Iterable[WorkerProcess], *, interrupted: bool) -> int:
    failed = covered = 0
    for worker in workers:
        configured = [SeriesKey(worker.exchange_id, s.symbol, tf)
                      for s in worker.spec.exchange.symbols for tf in s.timeframes]
        for series in configured:
            result = worker.series_results.get(tuple(series))
            status, reason = _status_of(worker, result, interrupted)
            ok = status in COVERED
            covered += ok
            failed += not ok
            unavailable = [f"[{iso_utc(a)}, {iso_utc(b)})" for a, b in (result or {}).get("unavailable", [])]
            message = f"{series}: {status}" + (f" ({reason})" if reason else "") + (
                f"; not served by the exchange: {', '.join(unavailable)}" if unavailable else "")
            log.log(logging.INFO if ok else logging.ERROR, message, extra={
                "event": "history_summary", "exchange": series.exchange, "symbol": series.symbol,
                "timeframe": series.timeframe, "status": status, "reason": reason,
                "rows": (result or {}).get("candles", 0), "unavailable": unavailable})
    code = 0 if failed == 0 and not interrupted else 1
    log.log(logging.INFO if code == 0 else logging.ERROR,
            "history finished: %d series covered, %d not", covered, failed,
            extra={"event": "history_complete", "covered": covered, "failed": failed,
                   "exit_code": code, "interrupted": interrupted})
    return code


def _status_of(worker: WorkerProcess, result: dict | None, interrupted: bool) -> tuple[str, str | None]:
    if result is not None:
        return result["status"], result.get("error")
    if worker.failure:
        return "failed", worker.failure
    if interrupted:
        return "failed", "interrupted by shutdown"
    return "failed", f"worker ended without reporting this series (exit code {worker.exit_code})"
