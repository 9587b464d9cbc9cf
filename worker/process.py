"""Inside a worker process: logging, signals, the event loop, and the exit code.

Signal handlers only set a flag; the LIVE loop and the HISTORY pagination look at it between
requests, so a write in flight always finishes before the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import schedule

from core import exit_codes
from core.logsetup import configure_worker_logging
from core.protocol import Envelope, Message, Mode, WorkerSpec
from core.series import series_key
from core.shards import state_file_name
from worker.audit import AuditRun
from worker.checkpoint import HistoryCheckpoint
from worker.errors import CollectorError, ExchangeSetupError
from worker.heap import release_free_heap
from worker.history import HistoryRun
from worker.live import LiveCollector
from worker.scheduling import run_until, schedule_live_jobs
from worker.session import ExchangeSession
from worker.sinks.factory import make_sink
from worker.sinks.offloaded import WriterLogging
from worker.spool import DeadLetters, Spool

log = logging.getLogger(__name__)

# A 1,000-bar HISTORY page allocates several thousand short-lived lists and tuples, all freed
# by reference counting. With the default young-generation threshold (700) the collector
# still runs a few times per page to look for cycles, about a fifth of a page's CPU. LIVE
# keeps the default: with 50,000 a LIVE worker's USS grew by a third over 400 cycles, as
# cyclic garbage lived long enough to spread over more of the heap.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Collect the young generation every 50,000 allocations instead of every 700 (HISTORY)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def worker_main(spec: WorkerSpec, channel: Any) -> None:
    """The worker process: log records and reports both travel on ``channel`` to the supervisor."""
    if spec.mode != Mode.LIVE:
        tune_garbage_collector()
    configure_worker_logging(channel, exchange=spec.exchange_id, mode=spec.mode,
                             level=spec.settings.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C reaches the whole process group; the supervisor decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A terminal hangup reaches the whole group too; a config reload is the supervisor's.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def report(message: Message) -> None:
        channel.put(Envelope(spec.exchange_id, os.getpid(), time.time(), message))

    if spec.mode == Mode.PLAN:  # resolving the series needs the exchange, not the store
        sink: Any = NoStore()
    else:
        sink = make_sink(spec.storage, bulk=spec.mode in (Mode.HISTORY, Mode.AUDIT),
                         logging_to=WriterLogging(channel, spec.exchange_id, spec.mode,
                                                  spec.settings.log_level))
    session = ExchangeSession(spec.exchange_id, spec.exchange, spec.settings, sink, report=report,
                              dead_letters=DeadLetters(state_path(spec, "dead-letters", ".jsonl")),
                              shard=spec.shard)
    loop = asyncio.new_event_loop()
    try:
        code = _run(session, spec, loop, stop)
    except Exception:
        log.exception("worker crashed", extra={"event": "worker_crashed"})
        code = exit_codes.TEMPORARY_FAILURE
    finally:
        try:
            loop.run_until_complete(session.close())
        finally:
            loop.close()
    log.info("worker exiting with code %d", code, extra={"event": "worker_exit", "exit_code": code})
    logging.shutdown()
    sys.exit(code)


def state_path(spec: WorkerSpec, stem: str, suffix: str) -> Path:
    """A state file of this worker; a shard's names carry the shard, so shards never share one."""
    return Path(spec.settings.state_dir) / state_file_name(stem, spec.exchange_id, spec.shard, suffix)


class NoStore:
    """The sink of a plan run, which writes nothing."""

    def ensure(self) -> None:
        pass

    def close(self) -> None:
        pass


def _run(session: ExchangeSession, spec: WorkerSpec, loop: asyncio.AbstractEventLoop,
         stop: threading.Event) -> int:
    watcher = threading.Thread(target=_forward_stop, args=(stop, session, loop), daemon=True)
    watcher.start()
    try:
        loop.run_until_complete(session.open())
    except CollectorError as exc:
        if stop.is_set():
            return exit_codes.OK if spec.mode == Mode.LIVE else exit_codes.INTERRUPTED
        return _start_failure_code(spec, exc)
    if not session.series and not session.skipped:
        _log_idle(spec)
        if spec.mode != Mode.LIVE:
            return exit_codes.OK
    if spec.mode == Mode.PLAN:
        return exit_codes.OK  # the plan went out with open()
    if not session.series and session.skipped:
        log.error("no configured series is offered by %s", spec.exchange_id,
                  extra={"event": "worker_bad_config"})
        return exit_codes.BAD_CONFIG
    if spec.mode == Mode.HISTORY:
        return _run_history(session, spec, loop, stop)
    if spec.mode == Mode.AUDIT:
        return _run_audit(session, spec, loop)
    return _run_live(session, spec, loop, stop)


def _log_idle(spec: WorkerSpec) -> None:
    """Nothing to collect (an empty universe, or a shard owning no series here): not an error.

    LIVE keeps running (and healthy): a universe refresh may bring symbols later.
    """
    why = (f"shard {spec.shard} owns no series of {spec.exchange_id}" if spec.shard is not None
           else f"nothing to collect on {spec.exchange_id}")
    log.warning("%s; idle", why, extra={"event": "shard_idle", "shard": str(spec.shard or "")})


def _start_failure_code(spec: WorkerSpec, exc: CollectorError) -> int:
    if isinstance(exc, ExchangeSetupError):
        log.error("cannot use %s: %s", spec.exchange_id, exc, extra={"event": "worker_bad_config"})
        return exit_codes.BAD_CONFIG
    log.error("cannot start %s: %s", spec.exchange_id, exc,
              extra={"event": "worker_start_error", "error": str(exc)[:300]})
    return exit_codes.TEMPORARY_FAILURE


def _forward_stop(stop: threading.Event, session: ExchangeSession, loop: asyncio.AbstractEventLoop) -> None:
    """Hand the signal flag to the session inside its event loop (no work in the handler)."""
    stop.wait()
    try:
        loop.call_soon_threadsafe(session.request_stop)
    except RuntimeError:  # the loop is already closed: nothing left to stop
        pass


def _run_live(session: ExchangeSession, spec: WorkerSpec, loop: asyncio.AbstractEventLoop,
              stop: threading.Event) -> int:
    spool = Spool(state_path(spec, "spool", ".jsonl"), spec.settings.spool_max_rows)
    live = LiveCollector(session, spool)
    loop.run_until_complete(live.resume_from_store())

    def cycle() -> None:
        loop.run_until_complete(live.cycle())
        release_free_heap()

    scheduler = schedule.Scheduler()
    schedule_live_jobs(scheduler, spec.settings.update_interval_seconds, cycle)
    cycle()  # the first cycle right away, then on the aligned ticks
    run_until(scheduler, stop.is_set, stop.wait)
    log.info("stopped on request", extra={"event": "worker_stopped"})
    return exit_codes.OK


def _run_audit(session: ExchangeSession, spec: WorkerSpec, loop: asyncio.AbstractEventLoop) -> int:
    assert spec.start_ms is not None and spec.end_ms is not None
    results = loop.run_until_complete(AuditRun(session).run(spec.start_ms, spec.end_ms, repair=spec.repair))
    clean = all(r.error is None and r.repairable == 0 for r in results)
    return exit_codes.OK if clean else exit_codes.HISTORY_INCOMPLETE


def _run_history(session: ExchangeSession, spec: WorkerSpec, loop: asyncio.AbstractEventLoop,
                 stop: threading.Event) -> int:
    assert spec.start_ms is not None and spec.end_ms is not None
    resume = {series_key(*key): ms for key, ms in spec.resume_from.items()}
    checkpoint = HistoryCheckpoint.for_range(spec.settings.state_dir, spec.exchange_id,
                                             spec.start_ms, spec.end_ms, spec.storage.model_dump_json(),
                                             shard=spec.shard)
    report = loop.run_until_complete(HistoryRun(session, checkpoint).run(spec.start_ms, spec.end_ms, resume))
    if stop.is_set() and not report.ok:
        return exit_codes.INTERRUPTED
    return exit_codes.OK if report.ok else exit_codes.HISTORY_INCOMPLETE
