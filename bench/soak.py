"""The fault soak: LIVE over three exchanges while everything around it fails, at random.

    python -m bench.run --only soak --minutes 60 [--seed 7]

The real CLI collects Binance, OKX and Kraken (simulator, SQLite store, a Loki endpoint).
Every ``fault_every_s`` (jittered, seeded) one fault from a shuffled deck: an exchange answers
503, times out or throttles; the store is locked longer than a writer waits (the SQLite
counterpart of BigQuery's 503: the writes fail and are spooled); Loki dies; a worker gets
SIGKILL; the config is edited and reloaded (SIGHUP). At the end: AUDIT through the real CLI
must find nothing repairable, the latest view no repeated key, and the USS of the supervisor
and of the workers at the end is compared with the start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.loki_sink import LokiSink
from bench.sim import SimProcess

ROOT = Path(__file__).resolve().parents[1]
EXCHANGES = {"binance": ["BTC/USDT", "ETH/USDT"], "okx": ["BTC/USDT"], "kraken": ["BTC/USD"]}
FAULTS = ("exchange_5xx", "exchange_timeout", "exchange_throttle", "store_outage", "loki_dead",
          "kill_worker", "reload")
MINUTE_MS = 60_000
BUSY_TIMEOUT_S = 30          # the SQLite sink's busy_timeout: a longer lock is an outage


@dataclass
class SoakResult:
    minutes: float
    faults: list[tuple[float, str, str]] = field(default_factory=list)   # (t s, kind, detail)
    uss_start: dict[str, int] = field(default_factory=dict)
    uss_end: dict[str, int] = field(default_factory=dict)
    supervisor_exit: int | None = None
    audit_exit: int | None = None
    audit_range: tuple[str, str] = ("", "")
    repairable: int = 0
    duplicate_keys: int = 0
    rows: int = 0
    events: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.supervisor_exit == 0 and self.audit_exit == 0 and self.duplicate_keys == 0

    def uss_ratio(self, role: str) -> float:
        return self.uss_end[role] / self.uss_start[role] if self.uss_start.get(role) else float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Soak:
    def __init__(self, sim: SimProcess, workdir: Path, *, minutes: float, seed: int,
                 fault_every_s: float, fault_s: float, interval_s: int) -> None:
        self.sim, self.workdir = sim, workdir
        self.minutes, self.fault_every_s, self.fault_s = minutes, fault_every_s, fault_s
        self.interval_s = interval_s
        self.rng = random.Random(seed)
        self.result = SoakResult(minutes)
        self.loki = LokiSink().start()
        self.db = workdir / "soak.sqlite"
        self.config_path = workdir / "soak.yaml"
        self.health_port = _free_port()
        self._deck: list[str] = []
        self._busy_until = 0.0
        self._timers: list[threading.Timer] = []
        workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()

    # -- the collector ---------------------------------------------------------------------

    def write_config(self, timeouts: dict[str, int] | None = None) -> None:
        exchanges = {}
        for name, symbols in EXCHANGES.items():
            ccxt = dict(self.sim.ccxt[name])
            ccxt["timeout"] = (timeouts or {}).get(name, 10_000)
            exchanges[name] = {"ccxt": ccxt, "symbols": [{"symbol": s, "timeframes": ["1m"]} for s in symbols]}
        config = {"settings": {"update_interval_seconds": self.interval_s, "health_port": self.health_port,
                               "environment": "soak", "state_dir": str(self.workdir / "state")},
                  "storage": {"backend": "sqlite", "sqlite": {"path": str(self.db)}},
                  "exchanges": exchanges}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def cli(self, *args: str, stdout: Any, stderr: Any = None) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "BIGQUERY_"))}
        env.update(PYTHONPATH=str(ROOT), LOG_FORMAT="json", LOKI_URL=self.loki.url)
        return subprocess.Popen([sys.executable, "-m", "supervisor", "--config", str(self.config_path), *args],
                                cwd=ROOT, env=env, stdout=stdout, stderr=stderr or subprocess.DEVNULL, text=True)

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None
        except ValueError:
            return None

    def worker_pids(self) -> dict[str, int]:
        answer = self.health() or {"workers": {}}
        return {name: w["pid"] for name, w in answer["workers"].items() if w["alive"]}

    def events(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.stdout_path.read_text().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def uss(self) -> dict[str, int]:
        found = {}
        roles = {"supervisor": self.proc.pid, **{f"worker:{e}": p for e, p in self.worker_pids().items()}}
        for role, pid in roles.items():
            try:
                found[role] = psutil.Process(pid).memory_full_info().uss
            except psutil.Error:
                continue
        found["workers"] = sum(v for k, v in found.items() if k.startswith("worker:"))
        return found

    # -- faults ----------------------------------------------------------------------------

    def next_fault(self) -> str:
        if not self._deck:
            self._deck = list(FAULTS)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def inject(self, kind: str, t: float) -> None:
        exchange = self.rng.choice(sorted(EXCHANGES))
        detail = exchange
        if kind == "exchange_5xx":
            self.sim.control("add_fault", exchange=exchange, kind="http_503", duration=self.fault_s)
        elif kind == "exchange_timeout":
            self.sim.control("add_fault", exchange=exchange, kind="timeout", duration=self.fault_s, seconds=12)
        elif kind == "exchange_throttle":
            self.sim.control("add_fault", exchange=exchange, kind="rate_limit", duration=self.fault_s)
        elif kind == "store_outage":
            hold = max(self.fault_s, BUSY_TIMEOUT_S + 10) if self.fault_s >= 20 else self.fault_s
            detail = f"write lock held {hold:.0f} s"
            threading.Thread(target=self._hold_write_lock, args=(hold,), daemon=True).start()
            self._busy_until = max(self._busy_until, time.monotonic() + hold)
        elif kind == "loki_dead":
            detail = f"{self.fault_s:.0f} s"
            self.loki.stop()
            self._later(self.fault_s, self.loki.start)
        elif kind == "kill_worker":
            pids = self.worker_pids()
            if exchange in pids:
                os.kill(pids[exchange], signal.SIGKILL)
            else:
                detail = f"{exchange} (not running)"
        elif kind == "reload":
            self.write_config({exchange: self.rng.choice([10_000, 10_001, 10_002])})
            self.proc.send_signal(signal.SIGHUP)
        self._busy_until = max(self._busy_until, time.monotonic() + self.fault_s)
        self.result.faults.append((round(t, 1), kind, detail))
        print(f"  t={t:7.1f} s  {kind:<18} {detail}", flush=True)

    def _hold_write_lock(self, seconds: float) -> None:
        conn = sqlite3.connect(self.db, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def _later(self, seconds: float, action: Any) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> SoakResult:
        self.stdout_path = self.workdir / "soak-stdout.log"
        with self.stdout_path.open("w") as out, (self.workdir / "soak-stderr.log").open("w") as err:
            self.proc = self.cli(stdout=out, stderr=err)
            try:
                self._collect_under_faults()
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(10)
                for timer in self._timers:
                    timer.cancel()
                if not self.loki.alive:
                    self.loki.start()
        self._audit()
        return self.result

    def _collect_under_faults(self) -> None:
        self._wait(lambda: (h := self.health()) and len(h["workers"]) == len(EXCHANGES)
                   and all(w["last_success"] for w in h["workers"].values()), 90, "healthy workers")
        self.first_ms = int(time.time() * 1000)
        time.sleep(min(30, self.minutes * 6))                        # warm-up before the first sample
        self.result.uss_start = self.uss()
        started = time.monotonic()
        deadline = started + self.minutes * 60
        while True:
            time.sleep(self.fault_every_s * self.rng.uniform(0.5, 1.5))
            if time.monotonic() >= deadline:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited ({self.proc.returncode}) during the soak")
            self.inject(self.next_fault(), time.monotonic() - started)
        # Every fault over, then long enough for a clean cycle and its gap repair everywhere.
        time.sleep(max(0.0, self._busy_until - time.monotonic()))
        cleared_ms = int(time.time() * 1000) + 2_000
        self._wait(lambda: all(self._clean_cycle_after(e, cleared_ms) for e in EXCHANGES), 180,
                   "a clean cycle on every exchange after the faults")
        time.sleep(2 * self.interval_s)                              # the last repairs' writes
        # The audited range (whole minutes after the first healthy one, up to the minute before
        # the stop) spans at least the soak's minutes plus one: a short soak must not end
        # within a minute of its start and leave AUDIT an empty range.
        audited_until_ms = self._audit_start_ms() + (int(self.minutes) + 1) * MINUTE_MS
        time.sleep(max(0.0, (audited_until_ms + MINUTE_MS + 2_000) / 1000 - time.time()))
        self.result.uss_end = self.uss()
        self.stop_ms = int(time.time() * 1000)
        self.proc.send_signal(signal.SIGTERM)
        self.result.supervisor_exit = self.proc.wait(30)
        names = ("worker_spawned", "worker_exited", "worker_hung", "worker_crashed", "config_reloaded",
                 "sink_write_error", "spool_delivered", "gap_repair", "fetch_error", "live_cycle_complete")
        events = self.events()
        self.result.events = {n: sum(1 for e in events if e.get("event") == n) for n in names}

    def _clean_cycle_after(self, exchange: str, after_ms: int) -> bool:
        for line in reversed(self.events()):
            if line.get("event") == "live_cycle_complete" and line.get("exchange") == exchange:
                ts = datetime.fromisoformat(line["ts"].replace("Z", "+00:00")).timestamp() * 1000
                return ts >= after_ms and line["failed_series"] == 0
        return False

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"soak: timed out waiting for {what}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"soak: the supervisor exited ({self.proc.returncode}) waiting for {what}")
            time.sleep(0.5)

    def _audit_start_ms(self) -> int:
        return (self.first_ms // MINUTE_MS + 1) * MINUTE_MS

    def _audit(self) -> None:
        start = self._audit_start_ms()
        end = self.stop_ms // MINUTE_MS * MINUTE_MS - MINUTE_MS
        self.result.audit_range = (_iso(start), _iso(end))
        path = self.workdir / "audit-stdout.log"
        with path.open("w") as out:
            proc = self.cli("--mode", "audit", "--start", _iso(start), "--end", _iso(end), stdout=out)
            self.result.audit_exit = proc.wait(300)
        for raw in path.read_text().splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("event") == "audit_summary":
                self.result.repairable += int(line.get("repairable") or 0)
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            self.result.duplicate_keys = conn.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM market_data_ohlcv_latest "
                "GROUP BY exchange, symbol, timeframe, timestamp HAVING COUNT(*) > 1)").fetchone()[0]
            self.result.rows = conn.execute("SELECT COUNT(*) FROM market_data_ohlcv_latest").fetchone()[0]
        finally:
            conn.close()


def run_soak(sim: SimProcess, workdir: Path, *, minutes: float, seed: int = 7,
             fault_every_s: float | None = None) -> SoakResult:
    """A 60-minute soak injects a fault about every 3 minutes, each lasting about a minute;
    a short one (CI) every 12 s, each lasting 8 s."""
    every = fault_every_s or (180.0 if minutes >= 30 else 12.0)
    fault_s = min(60.0, every * 0.6)
    interval = 5 if minutes >= 30 else 2
    return Soak(sim, workdir, minutes=minutes, seed=seed, fault_every_s=every, fault_s=fault_s,
                interval_s=interval).run()
