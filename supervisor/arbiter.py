"""The supervisor's main loop: one worker process per exchange, kept alive or joined.

Signal handlers only enqueue the signal. One short loop waits for worker reports, handles
signals, reaps exited workers, checks the living ones and starts what is due. Shutdown
escalates: SIGTERM, a grace period for the write in flight, then SIGKILL for stragglers.
SIGHUP reads the config file again and restarts only the workers whose config changed
(:mod:`supervisor.reload` decides what changed).

The loop's steps share the worker table and the stop deadlines, so they stay one class; what
they decide is delegated (restart backoff, reload plan, freshness, summaries, plan printing).
"""

from __future__ import annotations

import logging
import queue
import signal
import time
from typing import Any, Callable

from core import exit_codes
from core.config import AppConfig, ConfigError
from core.protocol import Envelope, Mode, WorkerSpec, WorkerState
from core.shards import Shard
from supervisor.freshness import add_freshness
from supervisor.plan import print_plan
from supervisor.reload import ReloadPlan, plan_reload
from supervisor.summaries import summarize_audit, summarize_history
from supervisor.workers import WorkerHandle

log = logging.getLogger(__name__)

LOOP_TICK_S = 0.5
MEMORY_SAMPLE_EVERY_S = 5.0


class Arbiter:
    def __init__(
        self,
        config: AppConfig,
        *,
        mode: Mode,
        exchanges: list[str],
        ctx: Any,
        log_queue: queue.Queue,
        start_ms: int | None = None,
        end_ms: int | None = None,
        repair: bool = False,
        shard: Shard | None = None,
        clock: Callable[[], float] = time.time,
        on_tick: Callable[[Arbiter], None] | None = None,
        reload_config: Callable[[], AppConfig] | None = None,
        selected: list[str] | None = None,
    ) -> None:
        self.config = config
        self.mode = Mode(mode)
        self.ctx = ctx
        self.log_queue = log_queue
        self.reports: queue.Queue[Envelope] = queue.Queue()
        self.clock = clock
        self.on_tick = on_tick or (lambda arbiter: None)
        self.signals: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = False
        self._last_memory_sample = 0.0
        self._start_ms, self._end_ms, self._repair = start_ms, end_ms, repair
        self.reload_config = reload_config
        self.selected = selected
        # SIGHUP: workers stopping to come back with a new spec, or to go for good, and when
        # the grace period of each stop ends.
        self._respawn_with: dict[str, WorkerSpec] = {}
        self._retiring: set[str] = set()
        self._stop_deadline: dict[str, float] = {}
        settings = config.settings
        self.heartbeat_timeout_s = settings.heartbeat_timeout_intervals * settings.update_interval_seconds
        self.shard = shard
        owned = self.owned(exchanges)
        if shard is not None and not owned:
            log.warning("shard %s owns none of the exchanges %s; idle", shard, ", ".join(exchanges),
                        extra={"event": "shard_idle", "shard": str(shard)})
        self.workers = {exchange_id: WorkerHandle(self.spec_for(config, exchange_id)) for exchange_id in owned}

    def owned(self, exchanges: list[str]) -> list[str]:
        """The exchanges this shard runs: all of them unless the config is split by exchange."""
        if self.shard is None or self.config.settings.shard_by != "exchange":
            return list(exchanges)
        return [e for e in exchanges if self.shard.owns_exchange(e)]

    def spec_for(self, config: AppConfig, exchange_id: str) -> WorkerSpec:
        return WorkerSpec(exchange_id, config.exchanges[exchange_id], config.settings, config.storage,
                          self.mode, self._start_ms, self._end_ms, repair=self._repair, shard=self.shard)

    @property
    def one_shot(self) -> bool:
        """HISTORY and AUDIT end when their range is done; LIVE runs until stopped."""
        return self.mode != Mode.LIVE

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        self.install_signal_handlers()
        for worker in self.workers.values():
            self.spawn_worker(worker)
        while not self.finished():
            self.wait_for_reports(LOOP_TICK_S)
            self.handle_signals()
            self.reap_workers()
            self.check_workers()
            self.kill_slow_stoppers()
            self.spawn_due_workers()
            self.on_tick(self)
        self.stop()
        return self.exit_code()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, frame: self.signals.put(signum))

    def finished(self) -> bool:
        if self.stopping:
            return True
        return self.one_shot and all(w.state in (WorkerState.DONE, WorkerState.FAILED) for w in self.workers.values())

    def wait_for_reports(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                envelope = self.reports.get(timeout=max(0.0, remaining))
            except queue.Empty:
                return
            worker = self.workers.get(envelope.exchange)
            if worker is not None:
                worker.on_message(envelope, self.clock())
            if remaining <= 0:
                return

    def handle_signals(self) -> None:
        while not self.signals.empty():
            signum = self.signals.get()
            if signum == signal.SIGHUP:
                self.reload()
                continue
            log.info("received %s, shutting down", signal.Signals(signum).name,
                     extra={"event": "shutdown_requested", "signal": signal.Signals(signum).name})
            self.stopping = True

    # -- lifecycle -------------------------------------------------------------------------

    def spawn_worker(self, worker: WorkerHandle) -> None:
        worker.spawn(self.ctx, self.log_queue, self.reports, self.clock())

    def reap_workers(self) -> None:
        now = self.clock()
        for worker in list(self.workers.values()):
            if worker.state not in (WorkerState.RUNNING, WorkerState.STOPPING):
                continue
            code = worker.reap()
            if code is None:
                continue
            self.decide_after_exit(worker, code, now)

    def decide_after_exit(self, worker: WorkerHandle, code: int, now: float) -> None:
        """Restart, finish, or give up on a worker that exited with ``code``."""
        ran_for = now - worker.started_at
        extra = {"event": "worker_exited", "worker": worker.exchange_id, "exit_code": code,
                 "ran_for_s": round(ran_for, 1)}
        if self.stopping:
            worker.state = WorkerState.DONE
        elif worker.exchange_id in self._retiring:
            self._retiring.discard(worker.exchange_id)
            self._stop_deadline.pop(worker.exchange_id, None)
            del self.workers[worker.exchange_id]
            log.info("worker %s stopped: its exchange left the config", worker.exchange_id,
                     extra={**extra, "event": "worker_retired"})
        elif worker.exchange_id in self._respawn_with:
            self._stop_deadline.pop(worker.exchange_id, None)
            worker.spec = self._respawn_with.pop(worker.exchange_id)
            worker.state, worker.next_start_at, worker.failure = WorkerState.BACKOFF, now, None
            worker.restarts += 1
            log.info("worker %s stopped for the new config, starting it again", worker.exchange_id,
                     extra={**extra, "event": "worker_reloaded"})
        elif code == exit_codes.BAD_CONFIG:
            worker.state, worker.failure = WorkerState.FAILED, "bad config for this exchange (see its log)"
            log.error("worker %s cannot run with this config; not restarting", worker.exchange_id, extra=extra)
        elif self.one_shot and code in (exit_codes.OK, exit_codes.HISTORY_INCOMPLETE):
            worker.state = WorkerState.DONE
            log.info("worker %s finished its range", worker.exchange_id, extra=extra)
        elif worker.recycle:
            log.warning("worker %s recycled, starting again", worker.exchange_id, extra=extra)
            worker.restarts += 1
            worker.state, worker.next_start_at = WorkerState.BACKOFF, now
        elif self.one_shot and worker.crashes >= self.config.settings.history_restart_budget:
            worker.state, worker.failure = WorkerState.FAILED, f"crashed {worker.crashes + 1} times (exit code {code})"
            log.error("worker %s out of restarts", worker.exchange_id, extra=extra)
        else:
            delay = worker.backoff.after_crash(ran_for)
            worker.crashes += 1
            worker.restarts += 1
            worker.state, worker.next_start_at = WorkerState.BACKOFF, now + delay
            log.error("worker %s exited unexpectedly, restarting in %.0f s", worker.exchange_id,
                      delay, extra={**extra, "restart_in_s": delay})

    def check_workers(self) -> None:
        """Kill a hung worker; recycle one that grew too large."""
        now = self.clock()
        sample = now - self._last_memory_sample >= MEMORY_SAMPLE_EVERY_S
        if sample:
            self._last_memory_sample = now
        limit = self.config.settings.max_worker_rss_mb * 1024 * 1024
        for worker in self.workers.values():
            if worker.state != WorkerState.RUNNING or not worker.is_alive():
                continue
            silent_for = now - worker.last_heartbeat
            if silent_for > self.heartbeat_timeout_s:
                log.error("worker %s silent for %.0f s, killing it", worker.exchange_id, silent_for,
                          extra={"event": "worker_hung", "worker": worker.exchange_id,
                                 "silent_for_s": round(silent_for, 1)})
                worker.kill_tree()
                continue
            if sample:
                worker.sample_memory()
                if worker.rss_bytes > limit:
                    log.warning("worker %s uses %d MB, recycling it", worker.exchange_id,
                                worker.rss_bytes // 2**20,
                                extra={"event": "worker_recycled", "worker": worker.exchange_id,
                                       "rss_bytes": worker.rss_bytes})
                    worker.recycle = True
                    worker.process.terminate()

    def kill_slow_stoppers(self) -> None:
        """A worker stopped by a reload gets the shutdown grace period, then SIGKILL."""
        now = time.monotonic()
        for exchange_id, deadline in list(self._stop_deadline.items()):
            worker = self.workers.get(exchange_id)
            if worker is not None and now >= deadline and worker.is_alive():
                log.warning("worker %s did not stop within the grace period, killing it", exchange_id,
                            extra={"event": "worker_killed", "worker": exchange_id})
                worker.kill_tree()
                self._stop_deadline[exchange_id] = now + 3600

    # -- SIGHUP --------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the config file again and apply what changed; a bad file changes nothing."""
        if self.reload_config is None or self.one_shot:
            log.warning("SIGHUP ignored: only a LIVE service reloads its config",
                        extra={"event": "config_reload_rejected", "reason": "not live"})
            return
        try:
            new = self.reload_config()
        except ConfigError as exc:
            log.error("config reload rejected, the running config stays: %s",
                      "; ".join(f"{path or '<root>'}: {message}" for path, message in exc.problems),
                      extra={"event": "config_reload_rejected", "source": exc.source,
                             "problems": [{"path": p, "message": m} for p, m in exc.problems]})
            return
        running = [e for e in self.workers if e not in self._retiring]
        plan = plan_reload(self.config, new, running, self.selected, owns=self.owned)
        if plan.needs_restart:
            log.warning("config reload: %s only change with a restart; running values kept",
                        ", ".join(plan.needs_restart),
                        extra={"event": "config_reload_needs_restart", "keys": plan.needs_restart})
        self.apply_reload(plan)

    def apply_reload(self, plan: ReloadPlan) -> None:
        self.config = plan.config
        settings = plan.config.settings
        self.heartbeat_timeout_s = settings.heartbeat_timeout_intervals * settings.update_interval_seconds
        deadline = time.monotonic() + settings.shutdown_grace_seconds
        for exchange_id in plan.removed:
            self._respawn_with.pop(exchange_id, None)
            self._retiring.add(exchange_id)
            self._stop_for_reload(self.workers[exchange_id], deadline)
        for exchange_id in plan.changed:
            self._respawn_with[exchange_id] = self.spec_for(plan.config, exchange_id)
            self._stop_for_reload(self.workers[exchange_id], deadline)
        for exchange_id in plan.added:
            self.workers[exchange_id] = WorkerHandle(self.spec_for(plan.config, exchange_id))
            self.spawn_worker(self.workers[exchange_id])
        log.info("config reloaded: %d added, %d removed, %d restarted, %d untouched",
                 len(plan.added), len(plan.removed), len(plan.changed), len(plan.unchanged),
                 extra={"event": "config_reloaded", "added": plan.added, "removed": plan.removed,
                        "restarted": plan.changed, "untouched": plan.unchanged,
                        "settings_changed": plan.settings_changed})

    def _stop_for_reload(self, worker: WorkerHandle, deadline: float) -> None:
        if worker.is_alive():
            worker.terminate()
            self._stop_deadline[worker.exchange_id] = deadline
        else:  # in backoff or failed: there is no process to wait for
            worker.state = WorkerState.STOPPING
            self.decide_after_exit(worker, worker.exit_code or 0, self.clock())

    def spawn_due_workers(self) -> None:
        now = self.clock()
        for worker in self.workers.values():
            if worker.state == WorkerState.BACKOFF and worker.next_start_at is not None and now >= worker.next_start_at:
                self.spawn_worker(worker)

    def stop(self) -> None:
        """TERM every worker, give them the grace period, KILL what is left, reap all."""
        grace = self.config.settings.shutdown_grace_seconds
        for worker in self.workers.values():
            worker.terminate()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(w.is_alive() for w in self.workers.values()):
            self.wait_for_reports(0.1)
        for worker in self.workers.values():
            if worker.is_alive():
                log.warning("worker %s did not stop within %.0f s, killing it", worker.exchange_id,
                            grace, extra={"event": "worker_killed", "worker": worker.exchange_id})
                worker.kill_tree()
            worker.reap()
        self.wait_for_reports(0)

    # -- results ---------------------------------------------------------------------------

    def exit_code(self) -> int:
        if self.mode == Mode.HISTORY:
            return summarize_history(self.workers.values(), interrupted=self.stopping)
        if self.mode == Mode.AUDIT:
            return summarize_audit(self.workers.values())
        if self.mode == Mode.PLAN:
            return print_plan(list(self.workers.values()), self.shard)
        if self.workers and all(w.state == WorkerState.FAILED for w in self.workers.values()):
            return exit_codes.USAGE  # every exchange's config was unusable: nothing was collected
        return exit_codes.OK

    def health(self) -> dict[str, Any]:
        now = self.clock()
        # list(): a reload may add or remove workers while the health server's thread reads.
        workers = {w.exchange_id: w.snapshot(now, self.heartbeat_timeout_s) for w in list(self.workers.values())}
        finished_ok = self.one_shot
        healthy = all(w["healthy"] or (finished_ok and w["state"] == WorkerState.DONE) for w in workers.values())
        snapshot = {"status": "ok", "mode": self.mode, "workers": workers}
        if self.mode == Mode.LIVE:
            settings = self.config.settings
            stale_after_s = settings.stale_after_intervals * settings.update_interval_seconds
            healthy &= not add_freshness(snapshot, self.workers.values(), now, stale_after_s)
        snapshot["status"] = "ok" if healthy else "degraded"
        return snapshot
