"""Scale figures: LIVE with 1,000 and 3,000 series on one exchange, and HISTORY's CPU per
1,000 candles (worker plus its store writer).

LIVE runs the real CLI (a supervisor, a forkserver, one Binance worker) against a simulator
with 600 extra Binance symbols, at the SDD's 60 s interval. Binance allows 50 kline requests
a second from one IP, so 1,000 series need 20 s of every minute and 3,000 series need 60 s:
the second workload is over the rate budget by design. Its figures show what a worker does
then: its cycle time, and whether every series still advanced (got fresh rows) in the run.

HISTORY runs in-process (``inprocess.product_history``), as the ``history`` scenario does, at
Binance's limit with the simulator on the same host: CPU per 1,000 candles and efficiency.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import inprocess
from bench.cli import _settings, series_config
from bench.collector import Collector, write_config
from bench.report import Figure, line, mb, section
from bench.sim import SimProcess, throttled_counts
from bench.sim_server import extra_binance_symbols

SCALE_EXTRA_SYMBOLS = 600            # 603 symbols x 5 timeframes >= 3,000 series
TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h"]
INTERVAL_S = 60


@dataclass
class LiveScaleRun:
    series: int
    cycle_s: list[float] = field(default_factory=list)
    cpu_per_cycle_s: list[float] = field(default_factory=list)   # the worker's, cycle to cycle
    worker_uss: int = 0
    supervisor_uss: int = 0
    advanced: int = 0                # series with rows in the store at the end
    requests: int = 0
    throttled: tuple[int, int] = (0, 0)


def scale_series(n: int) -> dict[str, list[str]]:
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"] + extra_binance_symbols(SCALE_EXTRA_SYMBOLS)
    pairs = [(s, tf) for s in symbols for tf in TIMEFRAMES][:n]
    grouped: dict[str, list[str]] = {}
    for symbol, tf in pairs:
        grouped.setdefault(symbol, []).append(tf)
    return grouped


def live_scale(sim: SimProcess, workdir: Path, n: int, cycles: int, latency_s: float) -> LiveScaleRun:
    """The CLI in LIVE until its worker has completed ``cycles`` cycles (the first included)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "config.yaml", sim.ccxt,
                          {"binance": series_config(scale_series(n))},
                          settings=_settings(workdir, update_interval_seconds=INTERVAL_S))
    sim.reset(latency_s)
    run = LiveScaleRun(n)
    collector = Collector(config)
    try:
        collector.wait_healthy(timeout=120)
        worker = psutil.Process(collector.worker_pids()["binance"])
        cpu_marks: list[float] = []
        deadline = time.monotonic() + cycles * (INTERVAL_S + n * 0.03) + 120
        while time.monotonic() < deadline:
            done = collector.events("live_cycle_complete", exchange="binance")
            if len(done) > len(cpu_marks):  # a cycle ended since the last look: mark the worker's CPU
                times = worker.cpu_times()
                cpu_marks.extend([times.user + times.system] * (len(done) - len(cpu_marks)))
            if len(done) >= cycles:
                break
            time.sleep(0.5)
        run.cycle_s = [e.get("duration_ms", 0) / 1000 for e in done]
        run.cpu_per_cycle_s = [b - a for a, b in zip(cpu_marks, cpu_marks[1:])]
        run.worker_uss = worker.memory_full_info().uss
        run.supervisor_uss = psutil.Process(collector.pid).memory_full_info().uss
        collector.terminate()
    finally:
        collector.kill()
    counters = sim.counters()
    run.requests = counters["binance"].get("endpoint:klines", 0)
    run.throttled = throttled_counts(counters)
    with sqlite3.connect(workdir / "md.sqlite") as conn:
        run.advanced = conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT symbol, timeframe "
                                    "FROM market_data_ohlcv)").fetchone()[0]
    return run


def run_scale(sim_pace_s: float, workdir: Path, latency_s: float, histories: list[HistoryCpu]) -> list[Figure]:
    """Every scale figure; the LIVE part on a simulator of its own (600 extra symbols)."""
    figures: list[Figure] = []
    section(f"Scale: LIVE, one Binance worker through the CLI, {INTERVAL_S} s interval, latency "
            f"{latency_s * 1000:.0f} ms")
    line(f"ideal cycle = series x {sim_pace_s * 1000:.0f} ms (ccxt's pace = Binance's 50 requests/s per IP); "
         f"the budget is {INTERVAL_S / sim_pace_s:,.0f} series per {INTERVAL_S} s")
    sim = SimProcess(SCALE_EXTRA_SYMBOLS)
    try:
        for n in (1000, 3000):
            cycles = 2
            run = live_scale(sim, workdir / f"scale-live-{n}", n, cycles, latency_s)
            ideal = n * sim_pace_s
            steady = run.cycle_s[-1] if run.cycle_s else float("nan")
            cpu = statistics.median(run.cpu_per_cycle_s) if run.cpu_per_cycle_s else float("nan")
            over = n * sim_pace_s >= INTERVAL_S  # plus a round trip: no room left in the interval
            line(f"N={n:,}: cycles {[round(c, 1) for c in run.cycle_s]} s against the ideal {ideal:.1f} s "
                 f"({steady / ideal:.2f} x); worker CPU per cycle {cpu:.2f} s "
                 f"({cpu / n * 1000:.2f} ms per series); worker USS {mb(run.worker_uss)}, supervisor "
                 f"{mb(run.supervisor_uss)}; {run.requests:,} kline requests; series that advanced "
                 f"{run.advanced:,} of {n:,}; 429/418 {run.throttled}"
                 + ("; over the budget" if over else ""))
            figures.append(Figure(
                f"LIVE {n:,} series, 1 exchange: cycle (x ideal); worker CPU/cycle; USS"
                + (" (over the rate budget)" if over else ""),
                f"{steady:.1f} s ({steady / ideal:.2f}x); {cpu:.2f} s; {mb(run.worker_uss)}",
                ideal=f"{ideal:.1f} s", target="every series advances",
                ok=run.advanced == n, throttled=run.throttled))
    finally:
        sim.close()
    figures.extend(history.figure() for history in histories)
    return figures


@dataclass
class HistoryCpu:
    """CPU per 1,000 candles and efficiency of in-process HISTORY runs at Binance's limit."""

    label: str                   # how the simulator served them: HTTP/1.0 or keep-alive
    ms_per_1000: list[float] = field(default_factory=list)
    efficiency: list[float] = field(default_factory=list)
    throttled: tuple[int, int] = (0, 0)

    def add(self, timing: inprocess.HistoryTiming, ideal_s: float) -> None:
        self.ms_per_1000.append((timing.cpu_s + timing.writer_cpu_s) / timing.candles * 1e6)
        self.efficiency.append(ideal_s / timing.wall_s)

    def figure(self) -> Figure:
        cpu, eff = statistics.median(self.ms_per_1000), statistics.median(self.efficiency)
        runs = len(self.ms_per_1000)
        return Figure(f"HISTORY CPU per 1,000 candles (worker + writer); efficiency, median of {runs}, "
                      f"{self.label}",
                      f"{cpu:.1f} ms; {eff:.3f}", ideal="20 ms = one request's pace",
                      target="<= 10 ms; >= 0.93", ok=cpu <= 10 and eff >= 0.93, throttled=self.throttled)
