"""The end of a one-shot run: one summary line per series, and the exit code.

HISTORY exits 0 only when every series is covered, or its uncovered part is one the exchange
cannot serve (reported as such). AUDIT exits 0 when no gap is left that the exchange could
fill. Otherwise both exit 1, and the summary says which series and why.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Iterable

from core import datasets, exit_codes
from core.protocol import GapKind, SeriesDone, SeriesStatus
from core.series import SeriesKey, series_key
from core.timefmt import iso_utc
from supervisor.workers import WorkerHandle

log = logging.getLogger(__name__)


def configured_series(worker: WorkerHandle) -> list[SeriesKey]:
    """The series the worker said it owns (universe and shard resolved), else the config's."""
    plan = worker.series_plan
    if plan is not None:
        return [series_key(*s) for s in plan.series] + [series_key(*s) for s, _ in plan.skipped]
    return datasets.configured_series(worker.exchange_id, worker.spec.exchange)


def summarize_audit(workers: Iterable[WorkerHandle]) -> int:
    dirty = 0
    for worker in workers:
        if worker.series_plan is None and not worker.spec.exchange.symbols:
            dirty += 1
            log.error("%s: no series resolved (%s)", worker.exchange_id,
                      worker.failure or f"exit code {worker.exit_code}",
                      extra={"event": "audit_summary", "exchange": worker.exchange_id,
                             "status": SeriesStatus.FAILED})
        for series in configured_series(worker):
            result = worker.audit_results.get(tuple(series))
            if result is None:
                dirty += 1
                log.error("%s: not audited (%s)", series, worker.failure or f"exit code {worker.exit_code}",
                          extra={"event": "audit_summary", "exchange": series.exchange,
                                 "symbol": series.symbol, "timeframe": series.timeframe,
                                 "status": SeriesStatus.FAILED})
                continue
            kinds = [g.kind for g in result.gaps]
            clean = result.repairable == 0 and not result.error
            dirty += not clean
            log.log(logging.INFO if clean else logging.ERROR,
                    "%s: %d of %d bars stored, %d gaps (%d repairable, %d no trades, %d unavailable), %d repaired",
                    series, result.stored, result.expected, len(kinds), kinds.count(GapKind.REPAIRABLE),
                    kinds.count(GapKind.NO_TRADES), kinds.count(GapKind.UNAVAILABLE), result.repaired,
                    extra={"event": "audit_summary", "exchange": series.exchange, "symbol": series.symbol,
                           "timeframe": series.timeframe, "expected": result.expected,
                           "stored": result.stored, "repairable": result.repairable,
                           "repaired": result.repaired, "error": result.error,
                           "gaps": [{**asdict(g), "start": iso_utc(g.start_ms), "end": iso_utc(g.end_ms)}
                                    for g in result.gaps][:200]})
    code = exit_codes.OK if dirty == 0 else exit_codes.HISTORY_INCOMPLETE
    log.log(logging.INFO if code == 0 else logging.ERROR, "audit finished: %d series with repairable gaps or errors",
            dirty, extra={"event": "audit_complete", "exit_code": code, "dirty": dirty})
    return code


def summarize_history(workers: Iterable[WorkerHandle], *, interrupted: bool) -> int:
    failed = covered = 0
    for worker in workers:
        if worker.series_plan is None and not worker.spec.exchange.symbols:
            failed += 1  # a universe-only exchange that never got as far as resolving it
            log.error("%s: no series resolved (%s)", worker.exchange_id,
                      worker.failure or f"exit code {worker.exit_code}",
                      extra={"event": "history_summary", "exchange": worker.exchange_id,
                             "status": SeriesStatus.FAILED})
        for series in configured_series(worker):
            result = worker.series_results.get(tuple(series))
            status, reason = _status_of(worker, result, interrupted)
            ok = status.covered
            covered += ok
            failed += not ok
            unavailable = [f"[{iso_utc(a)}, {iso_utc(b)})" for a, b in (result.unavailable if result else [])]
            message = f"{series}: {status}" + (f" ({reason})" if reason else "") + (
                f"; not served by the exchange: {', '.join(unavailable)}" if unavailable else "")
            log.log(logging.INFO if ok else logging.ERROR, message, extra={
                "event": "history_summary", "exchange": series.exchange, "symbol": series.symbol,
                "timeframe": series.timeframe, "status": status, "reason": reason,
                "rows": result.candles if result else 0, "unavailable": unavailable})
    code = exit_codes.OK if failed == 0 and not interrupted else exit_codes.HISTORY_INCOMPLETE
    log.log(logging.INFO if code == 0 else logging.ERROR,
            "history finished: %d series covered, %d not", covered, failed,
            extra={"event": "history_complete", "covered": covered, "failed": failed,
                   "exit_code": code, "interrupted": interrupted})
    return code


def _status_of(worker: WorkerHandle, result: SeriesDone | None,
               interrupted: bool) -> tuple[SeriesStatus, str | None]:
    if result is not None:
        return result.status, result.error
    if worker.failure:
        return SeriesStatus.FAILED, worker.failure
    if interrupted:
        return SeriesStatus.FAILED, "interrupted by shutdown"
    return SeriesStatus.FAILED, f"worker ended without reporting this series (exit code {worker.exit_code})"
