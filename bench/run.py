"""Benchmark of the collector against its ideal, a hand-written baseline and its targets.

    python -m bench.run [--quick] [--profile] [--keep] [--memory-cycles N]

One run prints every figure (HISTORY, LIVE, pipeline, memory, 429/418) and ends with a
Markdown table. ``--quick`` takes about 2.5 minutes, the full run about 10.

Ideals come from the rate limit the product must respect: ccxt's pacing for the endpoint
(``rateLimit`` x the endpoint's cost), which for Binance klines is also exactly what the
exchange allows (6,000 weight / 60 s, weight 2 = 50 requests/s = 20 ms per request).
Everything talks to the exchange simulator, in its own process, on 127.0.0.1.

Each scenario is a method of :class:`Bench` because they share one simulator process, one work
directory and one table of figures; what a scenario runs lives in ``bench.inprocess``,
``bench.cli``, ``bench.pipeline``, ``bench.scale`` and ``bench.soak``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import pstats
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import ccxt

from bench import cli, inprocess, memprobe, metrics_render, pipeline, scale, soak
from bench.collector import work_directory
from bench.report import Figure, line, markdown_table, mb, rate, section
from bench.sim import SimProcess, measure_ceiling, throttled_counts
from bench.sim_server import extra_binance_symbols

LATENCY_S = 0.100                       # simulator response delay: one round trip
BINANCE_HISTORY = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
OKX_HISTORY = {"BTC/USDT": ["15m"], "ETH/USDT": ["15m"], "SOL/USDT": ["15m"]}
KRAKEN_HISTORY = {"BTC/USD": ["1m"], "ETH/USD": ["1m"], "SOL/USD": ["1m"]}
LIVE_TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h"]
EXTRA_SYMBOLS = 100                     # 103 Binance symbols x 5 timeframes >= 500 series
STEP_BYTES = 8 * 2**20                  # a USS jump this big between two samples is a step
MEMORY_SERIES = {
    "binance": {s: LIVE_TIMEFRAMES for s in ["BTC/USDT", "ETH/USDT", "SOL/USDT", "S001/USDT"]},
    "okx": {s: ["1m", "1h"] for s in ["BTC/USDT", "ETH/USDT", "SOL/USDT"]},
    "kraken": {"BTC/USD": ["1m"]},
}


@dataclass(frozen=True)
class Mode:
    name: str
    history_pages: int      # 1,000-bar pages per Binance series (3 series)
    ceiling_s: float        # seconds per simulator-ceiling probe
    live_steady_cycles: int
    live_baseline_series: int
    pipeline_runs: int
    memory_cycles: int
    cli_single_runs: int    # CLI backfills of Binance alone; the median is the figure


QUICK = Mode("quick", history_pages=40, ceiling_s=2.0, live_steady_cycles=1,
             live_baseline_series=50, pipeline_runs=2, memory_cycles=25, cli_single_runs=1)
FULL = Mode("full", history_pages=150, ceiling_s=5.0, live_steady_cycles=3,
            live_baseline_series=200, pipeline_runs=3, memory_cycles=120, cli_single_runs=3)


def request_interval_s(exchange_id: str, path: str) -> float:
    """ccxt's pacing for one request to ``path``: rateLimit (ms) x the endpoint's cost."""
    exchange = getattr(ccxt, exchange_id)()
    return exchange.rateLimit * exchange.api["public"]["get"][path]["cost"] / 1000


def okx_ideal_s(series: int, tf_ms: int, start_ms: int, end_ms: int, now_ms: int) -> float:
    """OKX serves 100 bars per page from history-candles and 300 from candles.

    ccxt picks history-candles for a ``since`` older than 1,439 bars (okx.fetch_ohlcv).
    """
    border = now_ms - 1439 * tf_ms
    old = max(0, (min(border, end_ms) - start_ms) // tf_ms)
    recent = max(0, (end_ms - max(border, start_ms)) // tf_ms)
    per_series = (math.ceil(old / 100) * request_interval_s("okx", "market/history-candles")
                  + math.ceil(recent / 300) * request_interval_s("okx", "market/candles"))
    return series * per_series


def live_series(n: int) -> dict[str, list[str]]:
    """The first ``n`` (symbol, timeframe) pairs, symbol by symbol, as one config lists them."""
    symbols = BINANCE_HISTORY + extra_binance_symbols(EXTRA_SYMBOLS)
    pairs = [(s, tf) for s in symbols for tf in LIVE_TIMEFRAMES][:n]
    grouped: dict[str, list[str]] = {}
    for symbol, tf in pairs:
        grouped.setdefault(symbol, []).append(tf)
    return grouped


def code_fingerprint() -> str:
    """Which product code these figures belong to (others edit it while the bench runs)."""
    root = Path(__file__).resolve().parents[1]
    files = sorted(p for d in ("supervisor", "worker") for p in (root / d).rglob("*.py"))
    digest = hashlib.sha1()
    for path in files:
        digest.update(path.read_bytes())
    newest = max(files, key=lambda p: p.stat().st_mtime)
    changed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(newest.stat().st_mtime))
    return (f"sha1 {digest.hexdigest()[:12]} of {len(files)} files in supervisor/ and worker/, "
            f"newest {newest.relative_to(root)} ({changed} UTC)")


def host_speed_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop, to compare how fast the box ran between runs.

    A shared 2-core machine runs the same code up to 2.5 times slower at times; the CPU-bound
    figures (HISTORY in-process, pipeline) move with this number.
    """
    started = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return (time.process_time() - started) * 1000


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


class Bench:
    def __init__(self, mode: Mode, workdir: Path, profile: bool) -> None:
        self.mode = mode
        self.workdir = workdir
        self.profile = profile
        self.figures: list[Figure] = []
        self.sim = SimProcess(EXTRA_SYMBOLS)
        self.klines_s = request_interval_s("binance", "klines")
        now = int(time.time() * 1000)
        # Closed history only, ending an hour ago: Kraken (last 720 bars) still serves a part.
        self.end_ms = now // 3_600_000 * 3_600_000 - 3_600_000
        self.start_ms = self.end_ms - mode.history_pages * 1000 * 60_000
        self._misses_seen = 0

    def close(self) -> None:
        self.sim.close()

    def db(self, name: str) -> Path:
        return self.workdir / f"{name}.sqlite"

    # -- setup -----------------------------------------------------------------------------

    def header(self) -> None:
        section(f"TDA Large Collector benchmark ({self.mode.name})")
        line(f"{os.cpu_count()} cores, Python {platform.python_version()}, ccxt {ccxt.__version__}, "
             f"work dir {self.workdir}")
        line(f"Binance: 6,000 weight / 60 s, klines weight 2 -> 50 requests/s; ccxt paces klines at "
             f"{self.klines_s * 1000:.0f} ms (rateLimit 50 ms x cost 0.4): the same 50/s")
        line(f"OKX: ccxt paces candles {request_interval_s('okx', 'market/candles') * 1000:.0f} ms, "
             f"history-candles {request_interval_s('okx', 'market/history-candles') * 1000:.0f} ms; "
             f"Kraken OHLC {request_interval_s('kraken', 'OHLC') * 1000:.0f} ms")
        self.fingerprint = code_fingerprint()
        line(f"product code measured: {self.fingerprint}")
        line(f"load average {os.getloadavg()[0]:.2f} at start, host check {host_speed_ms():.0f} ms "
             "(a fixed Python loop's CPU time; other processes and a busy host skew the CPU-bound "
             "figures; both are printed again at the end)")
        line(f"simulator: separate process (pid {self.sim.pid}), latency {LATENCY_S * 1000:.0f} ms "
             f"unless stated, HTTP/1.0 (a new connection per request)")

    def simulator_ceiling(self) -> None:
        section("Simulator ceiling (no latency, no limit, 8 client threads)")
        uncached = measure_ceiling(self.sim, self.start_ms - 400 * 86_400_000, self.mode.ceiling_s,
                                   cached=False)
        cached = measure_ceiling(self.sim, self.start_ms, self.mode.ceiling_s, cached=True)
        line(f"1,000-bar kline pages rendered per request: {uncached:,.0f} pages/s "
             f"= {rate(uncached * 1000)} candles/s")
        line(f"served from the closed-page cache:          {cached:,.0f} pages/s "
             f"= {rate(cached * 1000)} candles/s")
        line(f"Uncached, the simulator alone would need {50 / uncached:.0%} of a core at Binance's "
             f"50 pages/s on a 2-core box; cached it needs {50 / cached:.0%}. Every timed")
        line("Binance page below is prewarmed into the cache, so the simulator is not the bottleneck.")
        self.figures.append(Figure("Simulator ceiling (1,000-bar pages/s, uncached / cached)",
                                   f"{uncached:,.0f} / {cached:,.0f}", ideal=">= 50 needed"))

    def prewarm(self, sim: SimProcess | None = None) -> int:
        """Fills a simulator's page cache (the bench's own by default); returns the pages the
        range needs at least."""
        sim = sim or self.sim
        started = time.perf_counter()
        results = [sim.prewarm(s, "1m", self.start_ms, self.end_ms) for s in BINANCE_HISTORY]
        pages = sum(r["pages"] for r in results)
        line(f"range needs {pages} Binance pages; prewarmed {sum(r['rendered'] for r in results)} "
             f"(cursor and window sequences) in {time.perf_counter() - started:.1f} s")
        return pages

    def cache_misses(self) -> int:
        """Pages the simulator had to render since the last call (should stay 0 when timed)."""
        stats = self.sim.bench("cache_stats")
        misses, self._misses_seen = stats["misses"] - self._misses_seen, stats["misses"]
        return misses

    # -- HISTORY ---------------------------------------------------------------------------

    def history(self) -> None:
        section("HISTORY: Binance, 3 series x 1m, 1,000 bars per page, latency 100 ms")
        days = (self.end_ms - self.start_ms) / 86_400_000
        line(f"range: {days:.1f} days ending an hour ago")
        pages = self.prewarm()
        self.cache_misses()
        ideal_s = pages * self.klines_s
        series = {s: ["1m"] for s in BINANCE_HISTORY}

        self.sim.reset(LATENCY_S)
        run = inprocess.product_history(self.sim, self.db("history"), "binance", series,
                                        self.start_ms, self.end_ms)
        product_429 = throttled_counts(self.sim.counters())
        eff = ideal_s / run.wall_s
        line(f"product (Worker.run_history in-process): {run.wall_s:.2f} s, {run.candles:,} candles "
             f"({run.stored:,} stored), {run.pages} pages, {rate(run.candles / run.wall_s)} candles/s, "
             f"CPU {run.cpu_s:.2f} s in the worker ({run.cpu_s / run.pages * 1000:.0f} ms/page) + "
             f"{run.writer_cpu_s:.2f} s in its store writer, statuses "
             f"{sorted(set(run.statuses))}, warnings {run.events or 'none'}, "
             f"pages the simulator had to render {self.cache_misses()}")
        line(f"ideal: {pages} pages x {self.klines_s * 1000:.0f} ms = {ideal_s:.2f} s "
             f"-> efficiency {eff:.3f} ({verdict(eff >= 0.9)} >= 0.9)")

        self.sim.reset(LATENCY_S)
        base = inprocess.baseline_history(self.sim, self.db("baseline"),
                                          [(s, "1m") for s in BINANCE_HISTORY],
                                          self.start_ms, self.end_ms)
        base_429 = throttled_counts(self.sim.counters())
        speedup = base.wall_s / run.wall_s
        line(f"baseline (sync ccxt loop, commit per page): {base.wall_s:.2f} s, {base.candles:,} candles, "
             f"{rate(base.candles / base.wall_s)} candles/s, CPU {base.cpu_s:.2f} s, "
             f"efficiency {ideal_s / base.wall_s:.2f}, pages rendered {self.cache_misses()}")
        line(f"product / baseline speed: {speedup:.3f}x ({verdict(speedup >= 3)} >= 3x); "
             f"429/418 product {product_429}, baseline {base_429}")
        self.figures.append(Figure(
            "HISTORY 1 exchange, in-process: efficiency (candles/s)",
            f"{eff:.3f} ({rate(run.candles / run.wall_s)}/s, {run.wall_s:.1f} s)",
            ideal=f"1.00 ({rate(run.candles / ideal_s)}/s, {ideal_s:.1f} s)",
            baseline=f"{ideal_s / base.wall_s:.2f} ({rate(base.candles / base.wall_s)}/s, {base.wall_s:.1f} s)",
            target=">= 0.9", ok=eff >= 0.9, throttled=product_429))
        self.figures.append(Figure("HISTORY 1 exchange: speed vs hand-written baseline",
                                   f"{speedup:.3f}x", ideal=f"{base.wall_s / ideal_s:.1f}x",
                                   baseline="1.00x", target=">= 3x", ok=speedup >= 3,
                                   throttled=base_429))
        self.baseline_history_s = base.wall_s
        self.ideal = {"binance": ideal_s}

    def history_cli(self) -> None:
        section("HISTORY through the CLI (python -m supervisor --mode history), latency 100 ms")
        now = int(time.time() * 1000)
        self.ideal["okx"] = okx_ideal_s(len(OKX_HISTORY), 900_000, self.start_ms, self.end_ms, now)
        self.ideal["kraken"] = len(KRAKEN_HISTORY) * request_interval_s("kraken", "OHLC")
        line("workloads: binance 3 x 1m; okx 3 x 15m (100 bars/page from history-candles); "
             "kraken 3 x 1m (serves its last 720 bars only)")
        line("ideal backfill time (requests needed x ccxt pacing): "
             + ", ".join(f"{ex} {s:.1f} s" for ex, s in self.ideal.items()))
        workloads = {"binance": {s: ["1m"] for s in BINANCE_HISTORY}, "okx": OKX_HISTORY,
                     "kraken": KRAKEN_HISTORY}
        # Binance alone is CPU-bound next to its rate limit, so one run moves with the host:
        # the figure is the median of several (each in a new directory: no resuming).
        plan = ([("binance", ["binance"])] * self.mode.cli_single_runs
                + [("okx", ["okx"]), ("kraken", ["kraken"]), ("all three", list(workloads))])
        every_run: list[tuple[str, cli.CliHistoryRun]] = []
        for k, (name, exchanges) in enumerate(plan):
            self.sim.reset(LATENCY_S)
            run = cli.cli_history(self.sim, self.workdir / f"cli-{k}-{name.replace(' ', '-')}",
                                  {ex: workloads[ex] for ex in exchanges}, self.start_ms, self.end_ms)
            every_run.append((name, run))
            per = ", ".join(f"{ex}: backfill {run.backfill_s(ex):.2f} s "
                            f"(eff {self.ideal[ex] / run.backfill_s(ex):.2f}), "
                            f"{run.rows.get(ex, 0):,} rows" for ex in exchanges)
            line(f"{name:9s}: exit {run.exit_code}, process {run.process_wall_s:.2f} s, "
                 f"workers {run.workers_wall_s:.2f} s; {per}; 429/418 {run.throttled}; "
                 f"{cli.cli_summary(run.counters)}; Binance pages rendered {self.cache_misses()}"
                 + (f"; {run.incidents} worker_hung/checkpoint_discarded events" if run.incidents else ""))
        singles = sorted((run for name, run in every_run if name == "binance"),
                         key=lambda run: run.backfill_s("binance"))
        runs = dict(every_run)
        single = runs["binance"] = singles[len(singles) // 2]
        eff1 = self.ideal["binance"] / single.backfill_s("binance")
        if len(singles) > 1:
            line(f"binance alone, {len(singles)} runs: backfill "
                 + ", ".join(f"{r.backfill_s('binance'):.2f} s" for r in singles)
                 + f"; the median gives efficiency {eff1:.3f}")
        both = runs["all three"]
        eff3 = max(self.ideal.values()) / both.backfill_wall_s
        slowest_name = max(("binance", "okx", "kraken"), key=lambda ex: runs[ex].workers_wall_s)
        slowest = runs[slowest_name].workers_wall_s
        ratio = both.workers_wall_s / slowest
        slowest_proc = max(runs[ex].process_wall_s for ex in ("binance", "okx", "kraken"))
        ratio_proc = both.process_wall_s / slowest_proc
        line(f"3 exchanges together / slowest alone ({slowest_name}): workers {ratio:.3f}x "
             f"({verdict(ratio <= 1.15)} <= 1.15x), whole process incl. start {ratio_proc:.3f}x")
        self.figures.append(Figure(
            "HISTORY 1 exchange, CLI: efficiency (backfill / incl. process start)"
            + (f", median of {len(singles)}" if len(singles) > 1 else ""),
            f"{eff1:.3f} / {self.ideal['binance'] / single.process_wall_s:.3f}",
            ideal="1.00", baseline=f"{self.ideal['binance'] / self.baseline_history_s:.2f}",
            target=">= 0.9", ok=eff1 >= 0.9, throttled=single.throttled))
        self.figures.append(Figure(
            "HISTORY 3 exchanges, CLI: efficiency (slowest ideal / backfill wall)",
            f"{eff3:.3f} ({both.backfill_wall_s:.1f} s)",
            ideal=f"1.00 ({max(self.ideal.values()):.1f} s)", target=">= 0.9", ok=eff3 >= 0.9,
            throttled=both.throttled))
        self.figures.append(Figure(
            "HISTORY 3 exchanges together / slowest alone (workers; incl. start)",
            f"{ratio:.3f}x; {ratio_proc:.3f}x", ideal="1.00x", target="<= 1.15x",
            ok=ratio <= 1.15, throttled=tuple(map(sum, zip(*(r.throttled for _, r in every_run))))))

    # -- LIVE ------------------------------------------------------------------------------

    def live(self) -> None:
        section("LIVE: one Binance worker, Worker.live_cycle in-process, latency 100 ms")
        line(f"ideal cycle = N x {self.klines_s * 1000:.0f} ms + one round trip "
             f"({LATENCY_S * 1000:.0f} ms); target = 1.15 x N x {self.klines_s * 1000:.0f} ms + one round trip")
        for n in (50, 200, 500):
            series = live_series(n)
            ideal = n * self.klines_s + LATENCY_S
            target = 1.15 * n * self.klines_s + LATENCY_S
            self.sim.reset(LATENCY_S)
            run = inprocess.product_live(self.sim, self.db(f"live-{n}"), series,
                                         self.mode.live_steady_cycles)
            counters = self.sim.counters()
            steady = inprocess.median(run.cycle_s)
            per_request = steady / (n * self.klines_s)
            line(f"N={n}: steady cycle {steady:.2f} s (cycles {[round(c, 2) for c in run.cycle_s]}) "
                 f"= {per_request:.2f} x (N x {self.klines_s * 1000:.0f} ms); ideal {ideal:.2f} s; "
                 f"{counters['binance'].get('requests', 0)} requests; 429/418 {throttled_counts(counters)}")
            base_s = None
            if n <= self.mode.live_baseline_series:
                self.sim.reset(LATENCY_S)
                base_s = inprocess.baseline_live(self.sim, self.db(f"live-base-{n}"),
                                                 [(s, tf) for s, tfs in series.items() for tf in tfs])
                line(f"       baseline (sequential sync loop): {base_s:.2f} s")
            self.figures.append(Figure(
                f"LIVE cycle, {n} series (steady state)",
                f"{steady:.2f} s = {per_request:.2f} x N x interval",
                ideal=f"{ideal:.2f} s (N x interval + RTT)", baseline="-" if base_s is None else f"{base_s:.2f} s",
                target=f"<= {target:.2f} s" if n == 200 else "-",
                ok=(steady <= target) if n == 200 else None, throttled=throttled_counts(counters)))
            if n == 200:
                self._live_clock_cycle(series, ideal, target)

    def _live_clock_cycle(self, series: dict[str, list[str]], ideal: float, target: float) -> None:
        """The first cycle, and one every 600 s, also reads the exchange clock."""
        self.sim.reset(LATENCY_S)
        run = inprocess.product_live(self.sim, self.db("live-200-clock"), series, 1,
                                     presample_clock=False)
        counters = self.sim.counters()["binance"]
        cycle = run.cycle_s[0]
        per_request = cycle / (200 * self.klines_s)
        line(f"N=200, cycle that samples the clock (the first, then every 600 s): {cycle:.2f} s "
             f"= {per_request:.2f} x (N x {self.klines_s * 1000:.0f} ms); "
             f"time requests {counters.get('endpoint:time', 0)}, "
             f"klines {counters.get('endpoint:klines', 0)}")
        self.figures.append(Figure(
            "LIVE cycle, 200 series, cycle that samples the clock (1st, then every 600 s)",
            f"{cycle:.2f} s = {per_request:.2f} x N x interval", ideal=f"{ideal:.2f} s",
            target=f"<= {target:.2f} s", ok=cycle <= target,
            throttled=throttled_counts({"binance": counters})))

    # -- pipeline --------------------------------------------------------------------------

    def pipeline(self) -> None:
        section("Pipeline: no latency, no limit (simulator off, ccxt rateLimit 0.001 ms), one worker")
        no_limit = {"rateLimit": 0.001}
        series = {s: ["1m"] for s in BINANCE_HISTORY}
        # CPU-bound, so other load on a 2-core box moves it: the median of a few runs.
        runs, throttled = [], (0, 0)
        for attempt in range(self.mode.pipeline_runs):
            self.sim.reset(0.0, binance_limits=False)
            runs.append(inprocess.product_history(
                self.sim, self.db(f"pipeline-{attempt}"), "binance", series, self.start_ms,
                self.end_ms, ccxt_overrides=no_limit))
            throttled = tuple(map(sum, zip(throttled, throttled_counts(self.sim.counters()))))
        run = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
        cpu_s = run.cpu_s + run.writer_cpu_s
        wall_rate, cpu_rate = run.candles / run.wall_s, run.candles / cpu_s
        self.sim.reset(0.0, binance_limits=False)
        base = inprocess.baseline_history(self.sim, self.db("pipeline-baseline"),
                                          [(s, "1m") for s in BINANCE_HISTORY], self.start_ms,
                                          self.end_ms, ccxt_overrides=no_limit)
        line(f"Binance pages the simulator had to render during these runs: {self.cache_misses()}")
        line(f"product: {run.candles:,} candles in {run.wall_s:.2f} s (median of "
             f"{[round(r.wall_s, 2) for r in runs]}) = {rate(wall_rate)} candles/s "
             f"(CPU {run.cpu_s:.2f} s in the worker + {run.writer_cpu_s:.2f} s in its store writer: "
             f"{rate(cpu_rate)} candles per CPU-second, {cpu_s / run.pages * 1000:.1f} ms per "
             f"1,000-bar page, {run.cpu_s / run.pages * 1000:.1f} ms of it in the worker)")
        line(f"baseline: {base.candles:,} candles in {base.wall_s:.2f} s = "
             f"{rate(base.candles / base.wall_s)} candles/s (CPU {base.cpu_s:.2f} s, "
             f"{base.cpu_s / base.pages * 1000:.1f} ms per page)")
        line("CPU per 1,000-candle page by stage (the product's own functions, timed one by one):")
        stages = pipeline.stage_breakdown(self.sim, self.start_ms)
        fetch = pipeline.request_path_ms(self.sim, self.start_ms)
        counted = sum(v for k, v in stages.items() if not k.startswith("  "))
        total = cpu_s / run.pages * 1000
        parse = (next(v for k, v in stages.items() if k.startswith("ccxt parse_ohlcvs"))
                 + next(v for k, v in stages.items() if k.startswith("JSON")))
        for name, value in stages.items():
            line(f"  {name:48s} {value:6.1f} ms")
        line(f"  {'ccxt async fetch_ohlcv alone (HTTP+JSON+parse)':48s} {fetch:6.1f} ms "
             f"(HTTP/aiohttp/ccxt request path {fetch - parse:.1f} ms)")
        line(f"  {'end-to-end in Worker.run_history (both processes)':48s} {total:6.1f} ms")
        line(f"  {'  not in the stages: GC, pickling, asyncio':48s} "
             f"{total - counted - (fetch - parse):6.1f} ms")
        if self.profile:
            self._profile_pipeline(series, no_limit)
        self.figures.append(Figure(
            "Pipeline, one worker, HTTP body -> committed SQLite row (wall; per CPU-s)",
            f"{rate(wall_rate)}/s; {rate(cpu_rate)}/CPU-s",
            ideal=f"{rate(1000 / fetch * 1000)}/s (ccxt fetch alone)",
            baseline=f"{rate(base.candles / base.wall_s)}/s",
            target=">= 50,000/s", ok=wall_rate >= 50_000, throttled=throttled))

    def _profile_pipeline(self, series: dict[str, list[str]], no_limit: dict) -> None:
        self.sim.reset(0.0, binance_limits=False)
        run = inprocess.product_history(self.sim, self.db("pipeline-profile"), "binance", series,
                                        self.start_ms, self.end_ms, ccxt_overrides=no_limit,
                                        profile=True)
        stats = pstats.Stats(run.profile)
        total = sum(t for _, t in pipeline.profile_by_area(stats))
        line("cProfile of the event-loop thread, own time by area:")
        for area, seconds in pipeline.profile_by_area(stats):
            line(f"  {area:30s} {seconds:6.2f} s  {seconds / total:5.1%}")
        stats.sort_stats("tottime").print_stats(15)

    # -- memory ----------------------------------------------------------------------------

    def memory(self) -> None:
        cycles = self.mode.memory_cycles
        section(f"Memory: CLI LIVE, update_interval_seconds 1, {cycles}+ cycles per worker, latency 100 ms")
        line("series: " + ", ".join(f"{ex} {sum(len(t) for t in s.values())}"
                                    for ex, s in MEMORY_SERIES.items()))
        self.sim.reset(LATENCY_S)
        run = cli.cli_live_memory(self.sim, self.workdir / "memory", MEMORY_SERIES, cycles)
        first, last = run.samples[0], run.samples[-1]
        line(f"ran {run.wall_s:.0f} s, exit {run.exit_code}, cycles per worker {last.cycles}, "
             f"{len(run.samples)} samples; 429/418 {run.throttled}")
        for ex, durations in run.cycle_ms.items():
            if durations:
                line(f"  {ex} cycle duration: median {inprocess.median(durations):.0f} ms, "
                     f"max {max(durations)} ms")
        roles = sorted(set(first.uss) | set(last.uss), key=lambda r: (not r.startswith("sup"), r))
        for role in roles:
            line(f"  {role:26s} USS {mb(first.uss.get(role, 0))} -> {mb(last.uss.get(role, 0))}, "
                 f"RSS {mb(first.rss.get(role, 0))} -> {mb(last.rss.get(role, 0))}")
        line(f"1,000 cycles are extrapolated from these {cycles}+ with a least-squares slope over "
             "the second half of the samples (a straight line: it cannot foresee a step)"
             + (". Quick mode: too few cycles, the slope is still warm-up." if cycles < 100 else "."))
        for role in (r for r in roles if r.startswith("worker:")):
            self._worker_memory(run, role)
        for role in roles:
            if role.startswith(("supervisor", "forkserver")):
                self.figures.append(Figure(
                    f"USS {role.split(':')[0]} after start -> end",
                    f"{mb(first.uss.get(role, 0))} -> {mb(last.uss.get(role, 0))}"))
        at_fork, built, collected = memprobe.uss_after_full_gc("binance")
        step = collected - built
        line(f"probe: a child of the product's forkserver (built like a worker) has USS {mb(at_fork)} at "
             f"fork, {mb(built)} with its ccxt exchange, {mb(collected)} after one gc.collect(): "
             f"+{mb(step)} (copy-on-write of the GC headers of ccxt's inherited objects). Every worker "
             "pays this at its first full collection.")
        self.figures.append(Figure(
            "Worker USS after its first full GC (forkserver probe)",
            f"{mb(built)} -> {mb(collected)} (+{step / built:.0%})", target="growth < 5%",
            ok=step / built < 0.05))

    def _worker_memory(self, run: cli.MemoryRun, role: str) -> None:
        ex = role.split(":", 1)[1]
        first, last = run.samples[0], run.samples[-1]
        slope = cli.growth_per_cycle(run.samples, role, ex, STEP_BYTES)
        start_uss, end_uss = first.uss.get(role, 0), last.uss.get(role, 0)
        growth = (end_uss - start_uss) / start_uss if start_uss else 0.0
        done = last.cycles.get(ex, 0)
        at_1000 = end_uss + slope * max(0, 1000 - done)
        growth_1000 = (at_1000 - start_uss) / start_uss if start_uss else 0.0
        line(f"  {role}: {growth:+.1%} over {done} cycles, {slope / 1024:+.1f} KB/cycle "
             f"-> {mb(at_1000)} at 1,000 cycles ({growth_1000:+.1%})")
        steps = cli.memory_steps(run.samples, role, ex, threshold=STEP_BYTES)
        for cycle, jump in steps:
            line(f"    step of +{mb(jump)} around cycle {cycle} (see the GC probe below)")
        # Under 100 cycles the slope is still warm-up: judge the measured growth only.
        trusted = done >= 100
        ok = start_uss <= 60 * 2**20 and growth < 0.05 and (growth_1000 < 0.05 or not trusted)
        extrapolated = f"{mb(at_1000)} ({growth_1000:+.1%})" if trusted else "too few cycles"
        self.figures.append(Figure(
            f"USS {role} after start -> after {done} cycles; 1,000 extrapolated",
            f"{mb(start_uss)} -> {mb(end_uss)} ({growth:+.1%}); {extrapolated}",
            target="<= 60 MB, growth < 5%", ok=ok, throttled=run.throttled))

    # -- scale -----------------------------------------------------------------------------

    def scale(self) -> None:
        """LIVE at 1,000 and 3,000 series; HISTORY CPU per 1,000 candles (bench/scale.py)."""
        section("Scale: HISTORY CPU per 1,000 candles, Binance 3 x 1m at its limit, latency 100 ms")
        line("measured twice: over HTTP/1.0 (a new connection per request, as every other scenario "
             "here) and over keep-alive connections, as the exchanges serve them; runs alternate")
        pages = self.prewarm()
        self.cache_misses()
        ideal_s = pages * self.klines_s
        series = {s: ["1m"] for s in BINANCE_HISTORY}
        http10 = scale.HistoryCpu("HTTP/1.0")
        kept = scale.HistoryCpu("keep-alive")
        with SimProcess(0, keep_alive=True) as kept_sim:
            self.prewarm(kept_sim)
            kept_misses = kept_sim.bench("cache_stats")["misses"]
            for attempt in range(self.mode.pipeline_runs):
                for name, history, sim in (("http10", http10, self.sim), ("keep-alive", kept, kept_sim)):
                    host_ms = host_speed_ms()
                    sim.reset(LATENCY_S)
                    run = inprocess.product_history(sim, self.db(f"scale-history-{name}-{attempt}"),
                                                    "binance", series, self.start_ms, self.end_ms)
                    history.add(run, ideal_s)
                    history.throttled = tuple(map(sum, zip(history.throttled, throttled_counts(sim.counters()))))
                    line(f"run {attempt + 1}, {history.label}: {run.candles:,} candles in {run.wall_s:.2f} s "
                         f"(ideal {ideal_s:.2f} s, efficiency {ideal_s / run.wall_s:.3f}); CPU "
                         f"{run.cpu_s * 1000:.0f} ms worker + {run.writer_cpu_s * 1000:.0f} ms writer = "
                         f"{history.ms_per_1000[-1]:.1f} ms per 1,000 candles; host check {host_ms:.0f} ms before")
            line(f"pages rendered while timed: {self.cache_misses()} (HTTP/1.0), "
                 f"{kept_sim.bench('cache_stats')['misses'] - kept_misses} (keep-alive)")
        self.figures.extend(scale.run_scale(self.klines_s, self.workdir, LATENCY_S, [kept, http10]))

    # -- summary ---------------------------------------------------------------------------

    def soak(self) -> None:
        section(f"Fault soak: LIVE over 3 exchanges for {self.soak_minutes:g} min, faults at random "
                f"(seed {self.soak_seed})")
        self.sim.reset(latency=0.02)
        result = soak.run_soak(self.sim, self.workdir / "soak", minutes=self.soak_minutes, seed=self.soak_seed)
        kinds = sorted({kind for _, kind, _ in result.faults})
        counts = ", ".join(f"{k} x{sum(1 for f in result.faults if f[1] == k)}" for k in kinds)
        line(f"{len(result.faults)} faults ({counts})")
        line(f"events: {result.events}")
        line(f"supervisor exit {result.supervisor_exit}; AUDIT {result.audit_range[0]}..{result.audit_range[1]} "
             f"exit {result.audit_exit}, {result.repairable} repairable bars; {result.rows} rows, "
             f"{result.duplicate_keys} repeated keys in the latest view")
        for role in ("supervisor", "workers"):
            line(f"USS {role}: {mb(result.uss_start.get(role, 0))} at start, {mb(result.uss_end.get(role, 0))} "
                 f"at end (x{result.uss_ratio(role):.2f})")
        self.figures.append(Figure(f"Soak {self.soak_minutes:g} min: AUDIT clean, no repeated key",
                                   f"exit {result.audit_exit}, {result.repairable} repairable, "
                                   f"{result.duplicate_keys} repeated", target="0 / 0", ok=result.ok))
        self.figures.append(Figure("Soak: USS end/start (supervisor / workers)",
                                   f"x{result.uss_ratio('supervisor'):.2f} / x{result.uss_ratio('workers'):.2f}",
                                   target="<= x1.25", ok=max(result.uss_ratio("supervisor"),
                                                             result.uss_ratio("workers")) <= 1.25))

    def summary(self, started: float) -> None:
        section("Summary")
        throttled = [f.throttled for f in self.figures if f.throttled is not None]
        total = (sum(t[0] for t in throttled), sum(t[1] for t in throttled))
        self.figures.append(Figure("429 / 418 over every scenario", f"{total[0]} / {total[1]}",
                                   ideal="0 / 0", target="0 / 0", ok=total == (0, 0)))
        line(f"{self.mode.name} run took {time.time() - started:.0f} s; "
             f"load average {os.getloadavg()[0]:.2f}, host check {host_speed_ms():.0f} ms at the end")
        fingerprint = code_fingerprint()
        if fingerprint != self.fingerprint:
            line(f"WARNING: the product code changed during the run; now {fingerprint}")
        print()
        print(markdown_table(self.figures))


METRICS_SERIES = 3000
METRICS_RENDER_TARGET_MS = 250          # a scrape every 15 s: under 2% of one core


def _metrics_scenario(bench: Bench) -> None:
    """/metrics rendered from 3,000 series' reports, and one worker's per-cycle report pickled."""
    section(f"/metrics with {METRICS_SERIES:,} series")
    figures = metrics_render.measure(METRICS_SERIES)
    line(f"render: {figures.render_ms:.0f} ms (median of 20), page {figures.page_bytes / 1024:.0f} KiB; "
         f"a {METRICS_SERIES // 3:,}-series SeriesFreshness report pickles in {figures.report_pickle_ms:.2f} ms "
         f"({figures.report_bytes / 1024:.0f} KiB)")
    bench.figures.append(Figure(f"/metrics render, {METRICS_SERIES:,} series", f"{figures.render_ms:.0f} ms",
                                target=f"<= {METRICS_RENDER_TARGET_MS} ms",
                                ok=figures.render_ms <= METRICS_RENDER_TARGET_MS))


# In the order a full run measures them; history_cli compares against history's baseline.
SCENARIOS = ("simulator_ceiling", "history", "history_cli", "live", "pipeline", "memory", "metrics")
# Run only when named with --only: the soak (minutes of faults) and scale (about 6 minutes,
# a simulator of its own).
EXTRA_SCENARIOS = ("soak", "scale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, about 2.5 minutes")
    parser.add_argument("--profile", action="store_true", help="also cProfile the pipeline run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (SQLite files, logs)")
    parser.add_argument("--memory-cycles", type=int, metavar="N",
                        help="LIVE cycles for the memory run (a soak: 1000 takes about 25 minutes)")
    parser.add_argument("--only", choices=SCENARIOS + EXTRA_SCENARIOS, nargs="+", metavar="SCENARIO",
                        help=f"run only these scenarios ({', '.join(SCENARIOS + EXTRA_SCENARIOS)})")
    parser.add_argument("--minutes", type=float, default=60, help="soak: how long the faults go on")
    parser.add_argument("--seed", type=int, default=7, help="soak: the seed of the fault schedule")
    args = parser.parse_args(argv)
    if args.only and "history_cli" in args.only and "history" not in args.only:
        parser.error("history_cli compares against the history scenario's ideal: add history")
    started = time.time()
    inprocess.install_event_counter()
    mode = QUICK if args.quick else FULL
    if args.memory_cycles:
        mode = replace(mode, memory_cycles=args.memory_cycles)
    with work_directory("tda-bench-", args.keep) as workdir:
        bench = Bench(mode, workdir, args.profile)
        bench.soak_minutes, bench.soak_seed = args.minutes, args.seed
        try:
            bench.header()
            for scenario in args.only or SCENARIOS:
                if scenario == "metrics":
                    _metrics_scenario(bench)
                else:
                    getattr(bench, scenario)()
            bench.summary(started)
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
