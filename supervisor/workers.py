"""A worker process as the supervisor sees it: its spec, its process, its restart history."""

from __future__ import annotations

import logging
import queue
import signal
from dataclasses import dataclass, field, replace
from typing import Any

import psutil

from core.entrypoints import WORKER_MAIN, run_entrypoint
from core.protocol import (
    AuditDone,
    Envelope,
    Heartbeat,
    Mode,
    SeriesDone,
    SeriesId,
    SeriesPlan,
    WorkerSpec,
    WorkerState,
)
from core.telemetry import SeriesFreshness
from supervisor.channels import WorkerChannel
from supervisor.restarts import RestartBackoff
from supervisor.telemetry import WorkerTelemetry

log = logging.getLogger(__name__)

@dataclass
class WorkerHandle:
    """The supervisor's handle on one exchange's worker process, kept across its restarts."""

    spec: WorkerSpec
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    state: WorkerState = WorkerState.STARTING
    process: Any = None
    channel: WorkerChannel | None = None
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    next_start_at: float | None = None
    restarts: int = 0
    crashes: int = 0
    exit_code: int | None = None
    last_success: float | None = None
    rows_written: int = 0
    rows_rejected: int = 0
    rss_bytes: int = 0
    uss_bytes: int = 0
    recycle: bool = False               # stopped on purpose (memory), restart at once
    failure: str | None = None
    # The series the worker resolved (universe, shard), as it last reported them.
    series_plan: SeriesPlan | None = None
    rate_budget_ratio: float | None = None
    # HISTORY: the last report per series, kept across restarts.
    series_results: dict[SeriesId, SeriesDone] = field(default_factory=dict)
    audit_results: dict[SeriesId, AuditDone] = field(default_factory=dict)
    # Requests, spool, HISTORY progress, per-series freshness: /metrics and /healthz.
    telemetry: WorkerTelemetry = field(default_factory=WorkerTelemetry)
    # Counters of the earlier runs of this worker, so totals survive restarts.
    _carried_rows: tuple[int, int] = (0, 0)

    @property
    def exchange_id(self) -> str:
        return self.spec.exchange_id

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def is_alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    # -- lifecycle verbs -------------------------------------------------------------------

    def spawn(self, ctx: Any, log_queue: queue.Queue, report_queue: queue.Queue, now: float) -> None:
        self.channel = WorkerChannel(ctx, log_queue, report_queue)
        self.process = ctx.Process(target=run_entrypoint, name=f"worker-{self.exchange_id}",
                                   args=(WORKER_MAIN, self._spec_for_this_run(), self.channel.queue),
                                   daemon=False)
        self.process.start()
        self.state, self.started_at, self.last_heartbeat = WorkerState.RUNNING, now, now
        if self.telemetry.watch_since is None:
            self.telemetry.watch_since = now
        self.next_start_at, self.exit_code, self.recycle = None, None, False
        log.info("started worker %s (pid %s)", self.exchange_id, self.pid,
                 extra={"event": "worker_spawned", "worker": self.exchange_id, "pid": self.pid,
                        "restarts": self.restarts})

    def _spec_for_this_run(self) -> WorkerSpec:
        """HISTORY restarts skip the series an earlier run already finished."""
        if self.spec.mode != Mode.HISTORY or self.spec.end_ms is None:
            return self.spec
        finished = {key: self.spec.end_ms for key, result in self.series_results.items()
                    if result.status.covered}
        return replace(self.spec, resume_from={**self.spec.resume_from, **finished})

    def terminate(self) -> None:
        """Ask the worker to finish its write in flight and exit (SIGTERM)."""
        if self.is_alive():
            self.process.terminate()
        if self.state not in (WorkerState.DONE, WorkerState.FAILED):
            self.state = WorkerState.STOPPING

    def kill_tree(self) -> None:
        """SIGKILL the worker and anything it started; used after the grace period only."""
        if self.process is None or self.process.pid is None:
            return
        try:
            parent = psutil.Process(self.process.pid)
            victims = parent.children(recursive=True) + [parent]
        except psutil.NoSuchProcess:
            return
        for proc in victims:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=2)

    def reap(self) -> int | None:
        """The exit code if the process ended (and retire its channel), else None."""
        if self.process is None or self.process.exitcode is None:
            return None
        code = self.process.exitcode
        self.process.join(0)
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self._carried_rows = (self.rows_written, self.rows_rejected)
        self.telemetry.on_exit()
        self.exit_code = code
        return code

    # -- what the worker reports -----------------------------------------------------------

    def on_message(self, envelope: Envelope, now: float) -> None:
        if envelope.pid != self.pid:
            return  # a late message from an earlier run of this worker
        self.last_heartbeat = now
        message = envelope.message
        if isinstance(message, Heartbeat):
            written, rejected = self._carried_rows
            self.rows_written = written + message.rows_written
            self.rows_rejected = rejected + message.rows_rejected
            if message.last_success:
                self.last_success = message.last_success
            self.rate_budget_ratio = message.rate_budget_ratio
            self.telemetry.on_heartbeat(message, now)
        elif isinstance(message, SeriesFreshness):
            self.telemetry.on_freshness(message)
        elif isinstance(message, SeriesPlan):
            self.series_plan = message
            self.telemetry.on_plan(message)
        elif isinstance(message, SeriesDone):
            self.series_results[message.series] = message
        elif isinstance(message, AuditDone):
            self.audit_results[message.series] = message

    def sample_memory(self) -> None:
        if not self.is_alive():
            return
        try:
            info = psutil.Process(self.pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return
        self.rss_bytes, self.uss_bytes = info.rss, getattr(info, "uss", 0)

    def snapshot(self, now: float, heartbeat_timeout_s: float) -> dict[str, Any]:
        return {
            "pid": self.pid, "state": self.state, "restarts": self.restarts,
            "alive": self.is_alive(),
            "healthy": self.is_alive() and now - self.last_heartbeat <= heartbeat_timeout_s,
            "last_heartbeat_age_s": round(now - self.last_heartbeat, 1) if self.started_at else None,
            "last_success": self.last_success, "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected, "rss_bytes": self.rss_bytes,
            "uss_bytes": self.uss_bytes, "exit_code": self.exit_code, "failure": self.failure,
            "rate_budget_ratio": self.rate_budget_ratio,
            "series": len(self.series_plan.series) if self.series_plan is not None else None,
        }

