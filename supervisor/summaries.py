"""The end of a one-shot run: one summary line per series, and the exit code.

HISTORY exits 0 only when every series is covered, or its uncovered part is one the exchange
cannot serve (reported as such). AUDIT exits 0 when no gap is left that the exchange could
fill. Otherwise both exit 1, and the summary says which series and why.
"""

from __future__ import annotations

import logging
from typing import Iterable

from supervisor.workers import WorkerProcess
from worker.candles import SeriesKey
from worker.timefmt import iso_utc

log = logging.getLogger("supervisor.history")

COVERED = ("complete", "partial_unavailable")


def configured_series(worker: WorkerProcess) -> list[SeriesKey]:
    return [SeriesKey(worker.exchange_id, s.symbol, tf)
            for s in worker.spec.exchange.symbols for tf in s.timeframes]


def summarize_audit(workers: Iterable[WorkerProcess]) -> int:
    dirty = 0
    for worker in workers:
        for series in configured_series(worker):
            result = worker.audit_results.get(tuple(series))
            if result is None:
                dirty += 1
                log.error("%s: not audited (%s)", series, worker.failure or f"exit code {worker.exit_code}",
                          extra={"event": "audit_summary", "exchange": series.exchange,
                                 "symbol": series.symbol, "timeframe": series.timeframe,
                                 "status": "failed"})
                continue
            kinds = [g["kind"] for g in result["gaps"]]
            clean = result["repairable"] == 0 and not result["error"]
            dirty += not clean
            log.log(logging.INFO if clean else logging.ERROR,
                    "%s: %d of %d bars stored, %d gaps (%d repairable, %d no trades, %d unavailable), %d repaired",
                    series, result["stored"], result["expected"], len(kinds), kinds.count("repairable"),
                    kinds.count("no_trades"), kinds.count("unavailable"), result["repaired"],
                    extra={"event": "audit_summary", "exchange": series.exchange, "symbol": series.symbol,
                           "timeframe": series.timeframe, "expected": result["expected"],
                           "stored": result["stored"], "repairable": result["repairable"],
                           "repaired": result["repaired"], "error": result["error"],
                           "gaps": [{**g, "start": iso_utc(g["start_ms"]), "end": iso_utc(g["end_ms"])}
                                    for g in result["gaps"]][:200]})
    code = 0 if dirty == 0 else 1
    log.log(logging.INFO if code == 0 else logging.ERROR, "audit finished: %d series with repairable gaps or errors",
            dirty, extra={"event": "audit_complete", "exit_code": code, "dirty": dirty})
    return code


def summarize_history(workers: Iterable[WorkerProcess], *, interrupted: bool) -> int:
    failed = covered = 0
    for worker in workers:
        for series in configured_series(worker):
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
