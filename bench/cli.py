"""Scenarios that run the real CLI, ``python -m supervisor``, as a subprocess.

Only this path shows what the product costs as shipped: a supervisor, a forkserver and
one worker process per exchange.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.collector import Collector, write_config
from bench.sim import SimProcess, throttled_counts
from core.config import Settings


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def series_config(series: dict[str, list[str]]) -> list[dict]:
    return [{"symbol": s, "timeframes": tfs} for s, tfs in series.items()]


def _settings(workdir: Path, **values: Any) -> dict[str, Any]:
    """Keep the run's state (HISTORY checkpoints, spool) in the bench's own directory.

    ``state_dir`` defaults to ./data/state, relative to the CLI's cwd (the repository):
    without this a second run of the same range would resume from the first one's
    checkpoint and fetch nothing. The key only exists in newer configs, hence the check.
    """
    if "state_dir" in Settings.model_fields:
        values["state_dir"] = str(workdir / "state")
    return values


@dataclass
class CliHistoryRun:
    exit_code: int
    process_wall_s: float                       # Popen to exit: includes interpreter start
    spans: dict[str, tuple[float, float, float]]  # exchange -> (spawned, ready, exited)
    rows: dict[str, int]
    throttled: tuple[int, int]
    counters: dict[str, dict]
    incidents: int = 0                          # workers killed as hung, checkpoints discarded

    @property
    def workers_wall_s(self) -> float:
        """First worker spawned to last worker exited (the e2e test's measure)."""
        return max(s[2] for s in self.spans.values()) - min(s[0] for s in self.spans.values())

    def backfill_s(self, exchange: str) -> float:
        """worker_ready (markets loaded) to worker_exit: the backfill alone."""
        _, ready, exited = self.spans[exchange]
        return exited - ready

    @property
    def backfill_wall_s(self) -> float:
        return max(s[2] for s in self.spans.values()) - min(s[1] for s in self.spans.values())


def cli_history(sim: SimProcess, workdir: Path, exchanges: dict[str, dict[str, list[str]]],
                start_ms: int, end_ms: int, timeout_s: float = 900) -> CliHistoryRun:
    workdir.mkdir(parents=True, exist_ok=True)
    # update_interval_seconds stays at its default (60). At 1 the hung-worker timeout would be
    # 5 x 1 s: the 5 s HISTORY heartbeat then races it, and a busy worker gets killed and
    # restarted mid-backfill (seen: +191 requests, +50 % time).
    config = write_config(workdir / "config.yaml", sim.ccxt,
                          {ex: series_config(series) for ex, series in exchanges.items()},
                          settings=_settings(workdir, health_port=0, history_page_limit=1000,
                                             update_interval_seconds=60))
    sim.control("reset_counters")
    started = time.perf_counter()
    collector = Collector(config, "--mode", "history", "--start", _iso(start_ms),
                          "--end", _iso(end_ms))
    try:
        code = collector.wait(timeout_s)
        wall = time.perf_counter() - started
        spans = {}
        for exchange in exchanges:
            spawned = _ts(collector.events("worker_spawned", worker=exchange)[0]["ts"])
            ready = _ts(collector.events("worker_ready", exchange=exchange)[0]["ts"])
            exited = _ts(collector.events("worker_exit", exchange=exchange)[-1]["ts"])
            spans[exchange] = (spawned, ready, exited)
        rows: dict[str, int] = {}
        for summary in collector.events("history_summary"):  # one per series
            rows[summary["exchange"]] = rows.get(summary["exchange"], 0) + summary.get("rows", 0)
        restarts = len(collector.events("worker_hung")) + len(collector.events("checkpoint_discarded"))
    finally:
        collector.kill()
    counters = sim.counters()
    return CliHistoryRun(code, wall, spans, rows, throttled_counts(counters), counters, restarts)


@dataclass
class MemorySample:
    cycles: dict[str, int]          # worker -> LIVE cycles completed so far
    uss: dict[str, int]             # process role -> bytes
    rss: dict[str, int]


@dataclass
class MemoryRun:
    samples: list[MemorySample] = field(default_factory=list)
    cycle_ms: dict[str, list[int]] = field(default_factory=dict)
    throttled: tuple[int, int] = (0, 0)
    exit_code: int | None = None
    wall_s: float = 0.0


def _process_roles(supervisor: psutil.Process, worker_pids: dict[str, int]) -> dict[str, psutil.Process]:
    """supervisor, worker:<exchange>, and the helpers (forkserver, resource tracker)."""
    roles = {"supervisor": supervisor}
    by_pid = {pid: name for name, pid in worker_pids.items()}
    for child in supervisor.children(recursive=True):
        if child.pid in by_pid:
            roles[f"worker:{by_pid[child.pid]}"] = child
        else:
            try:
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            kind = "forkserver" if "forkserver" in cmd else "resource_tracker" if "resource_tracker" in cmd else "other"
            roles[f"{kind}:{child.pid}"] = child
    return roles


def cli_live_memory(sim: SimProcess, workdir: Path, exchanges: dict[str, dict[str, list[str]]],
                    cycles: int, sample_every_s: float = 2.0) -> MemoryRun:
    """LIVE at a 1 s interval until every worker has run ``cycles`` cycles; USS/RSS sampled.

    ``memory_full_info`` (USS) reads /proc/<pid>/smaps: it is the memory a process would
    give back if it exited, so the pages a worker shares with the forkserver (ccxt's
    preloaded modules) are not counted against it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "config.yaml", sim.ccxt,
                          {ex: series_config(series) for ex, series in exchanges.items()},
                          settings=_settings(workdir, update_interval_seconds=1))
    sim.control("reset_counters")
    run = MemoryRun()
    started = time.perf_counter()
    collector = Collector(config)
    try:
        collector.wait_healthy(timeout=60)
        supervisor = psutil.Process(collector.pid)
        pids = collector.worker_pids()
        deadline = time.monotonic() + cycles * 3 + 120
        while True:
            done = {ex: len(collector.events("live_cycle_complete", exchange=ex)) for ex in exchanges}
            uss, rss = {}, {}
            for role, proc in _process_roles(supervisor, pids).items():
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                uss[role], rss[role] = info.uss, info.rss
            run.samples.append(MemorySample(done, uss, rss))
            if min(done.values()) >= cycles or time.monotonic() > deadline:
                break
            time.sleep(sample_every_s)
        for ex in exchanges:
            run.cycle_ms[ex] = [l.get("duration_ms", 0) for l in
                                collector.events("live_cycle_complete", exchange=ex)]
        run.exit_code = collector.terminate()
    finally:
        run.wall_s = time.perf_counter() - started
        collector.kill()
    run.throttled = throttled_counts(sim.counters())
    return run


def growth_per_cycle(samples: list[MemorySample], role: str, worker: str,
                     step_threshold: int) -> float:
    """Least-squares slope of USS, bytes per cycle of ``worker``, after the warm-up.

    The first half of the run is warm-up (imports finishing, first writes, caches filling);
    the slope is fitted over the second half, or after the last step (one-off jumps are
    reported on their own by :func:`memory_steps`, a line through one would be meaningless).
    """
    points = [(s.cycles[worker], s.uss[role]) for s in samples if role in s.uss]
    steps = [i for i in range(1, len(points)) if points[i][1] - points[i - 1][1] > step_threshold]
    tail = points[max([len(points) // 2, *steps[-1:]]):]
    if len(tail) < 2:
        return 0.0
    n = len(tail)
    mx = sum(x for x, _ in tail) / n
    my = sum(y for _, y in tail) / n
    var = sum((x - mx) ** 2 for x, _ in tail)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in tail) / var


def memory_steps(samples: list[MemorySample], role: str, worker: str,
                 threshold: int) -> list[tuple[int, int]]:
    """(cycle, bytes) of each jump above ``threshold`` between two consecutive samples."""
    points = [(s.cycles[worker], s.uss[role]) for s in samples if role in s.uss]
    return [(c2, u2 - u1) for (_, u1), (c2, u2) in zip(points, points[1:]) if u2 - u1 > threshold]


def cli_summary(counters: dict[str, Any]) -> str:
    return ", ".join(f"{ex}: {c.get('requests', 0)} req" for ex, c in counters.items()
                     if c.get("requests"))
