"""Offline demo: the collector against the bundled exchange simulator, into SQLite.

Starts the exchange simulator (binance, okx and kraken REST dialects) on 127.0.0.1, writes a
config for it, runs ``python -m supervisor`` and prints its log lines, stops it with SIGTERM
and prints what got stored. Nothing leaves the machine.

    python demo/run_demo.py                       # LIVE for 60 s
    python demo/run_demo.py --seconds 90          # LIVE for 90 s
    python demo/run_demo.py --history-hours 24    # HISTORY: backfill the last 24 hours, then exit
    python demo/run_demo.py --raw                 # the collector's JSON lines as they are
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from demo.demo_config import write_config  # noqa: E402
from simulator import ExchangeSimulator  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the collector against the local exchange simulator.")
    parser.add_argument("--seconds", type=float, default=60, help="how long LIVE runs before SIGTERM (default 60)")
    parser.add_argument("--history-hours", type=float, default=None, metavar="N",
                        help="run HISTORY over the last N hours instead of LIVE")
    parser.add_argument("--interval", type=int, default=5, help="LIVE polling period in seconds (default 5)")
    parser.add_argument("--dir", default=str(ROOT / "data" / "demo"),
                        help="where the config, the SQLite file and the worker state go (default data/demo)")
    parser.add_argument("--keep", action="store_true", help="keep what an earlier demo stored")
    parser.add_argument("--raw", action="store_true", help="print the collector's JSON lines unchanged")
    parser.add_argument("--latency", type=float, default=0.0, help="simulated exchange latency in seconds")
    return parser.parse_args(argv)


def fresh_dir(path: Path, keep: bool) -> None:
    if not keep:
        for name in ("market_data.sqlite", "market_data.sqlite-wal", "market_data.sqlite-shm"):
            (path / name).unlink(missing_ok=True)
        shutil.rmtree(path / "state", ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def echo(stream) -> None:
    for line in stream:
        print(line.rstrip(), flush=True)


def collector_env(raw: bool) -> dict[str, str]:
    """No Loki, no BigQuery: the demo's logs go to stdout only, and its data to SQLite.

    The collector's stdout is a pipe here, so it would print JSON lines: the console form is
    asked for unless ``--raw`` wants the JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "BIGQUERY_", "GOOGLE_"))}
    env["LOG_FORMAT"] = "json" if raw else "console"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_collector(config: Path, extra: list[str], *, seconds: float | None, raw: bool) -> int:
    """Run the CLI, echoing its stdout; LIVE (seconds given) is stopped with SIGTERM."""
    command = [sys.executable, "-m", "supervisor", "--config", str(config), *extra]
    print("$ " + " ".join(command[1:]), flush=True)
    proc = subprocess.Popen(command, cwd=ROOT, env=collector_env(raw), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    reader = threading.Thread(target=echo, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        if seconds is None:
            proc.wait()
        else:
            try:
                proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                print(f"--- {seconds:g} s are up: SIGTERM to the collector (pid {proc.pid}) ---", flush=True)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    except KeyboardInterrupt:
        print("--- interrupted: SIGTERM to the collector ---", flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    return proc.returncode


def stored_summary(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT t.exchange, t.symbol, t.timeframe, s.bars, s.first_ts, t.timestamp, t.close, t.volume "
            "FROM market_data_ohlcv_latest t JOIN (SELECT exchange, symbol, timeframe, COUNT(*) AS bars, "
            "MIN(timestamp) AS first_ts, MAX(timestamp) AS last_ts FROM market_data_ohlcv_latest "
            "GROUP BY exchange, symbol, timeframe) s ON t.exchange = s.exchange AND t.symbol = s.symbol "
            "AND t.timeframe = s.timeframe AND t.timestamp = s.last_ts "
            "ORDER BY t.exchange, t.symbol, t.timeframe").fetchall()
    finally:
        conn.close()


def print_table(rows: list[tuple]) -> None:
    headers = ("exchange", "symbol", "tf", "rows", "first bar (UTC)", "newest bar (UTC)", "close", "volume")
    cells = [(e, s, tf, str(n), first[:16].replace("T", " "), last[:16].replace("T", " "), f"{close:.10g}",
              f"{volume:.10g}") for e, s, tf, n, first, last, close, volume in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.rjust(w) if i >= 3 and i not in (4, 5) else v.ljust(w)
                        for i, (v, w) in enumerate(zip(c, widths))))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(args.dir).resolve()
    fresh_dir(data_dir, args.keep)
    sim = ExchangeSimulator().start()
    sim.set_latency(args.latency)
    try:
        config = write_config(data_dir / "config.yaml", sim.base_url, data_dir, interval=args.interval)
        print(f"exchange simulator on {sim.base_url} (binance, okx, kraken); config {config}", flush=True)
        if args.history_hours:
            end = datetime.now(UTC).replace(second=0, microsecond=0)
            start = end - timedelta(hours=args.history_hours)
            fmt = "%Y-%m-%dT%H:%M:%S"
            code = run_collector(config, ["--mode", "history", "--start", start.strftime(fmt),
                                          "--end", end.strftime(fmt)], seconds=None, raw=args.raw)
        else:
            code = run_collector(config, [], seconds=args.seconds, raw=args.raw)
    finally:
        sim.stop()
    print(f"\ncollector exit code: {code}")
    db = data_dir / "market_data.sqlite"
    rows = stored_summary(db)
    print(f"\nstored in {db} (latest version of each bar):\n")
    print_table(rows)
    print(f"\n{sum(r[3] for r in rows)} bars in {len(rows)} series")
    return 0 if code == 0 and rows else 1


if __name__ == "__main__":
    sys.exit(main())
