"""The bench's handle on the simulator process: start it, steer it, read its counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simulator import default_rate_limits

ROOT = Path(__file__).resolve().parents[1]

# reset() puts Binance back to the limits a fresh simulator starts with.
_BINANCE = default_rate_limits()["binance"]
BINANCE_DEFAULT_LIMIT = dict(enabled=_BINANCE.enabled, limit=_BINANCE.limit, window=_BINANCE.window,
                             ban_after=_BINANCE.ban_after, ban_seconds=_BINANCE.ban_seconds)


class SimProcess:
    """``python -m bench.sim_server`` as a child process, driven over its HTTP control plane."""

    def __init__(self, extra_binance_symbols: int, *, keep_alive: bool = False) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sim_server", "--port", "0",
             "--extra-binance-symbols", str(extra_binance_symbols),
             *(["--keep-alive"] if keep_alive else [])],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        first = json.loads(self.proc.stdout.readline())
        self.base_url: str = first["base_url"]
        self.ccxt: dict[str, dict] = first["ccxt"]
        self.pid = self.proc.pid

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    # -- control plane ---------------------------------------------------------------------

    def _post(self, path: str, op: str, **args: Any) -> Any:
        data = json.dumps({"op": op, **args}).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        if not answer.get("ok"):
            raise RuntimeError(f"simulator {op}: {answer.get('error')}")
        return answer["result"]

    def control(self, op: str, **args: Any) -> Any:
        return self._post("/_control", op, **args)

    def bench(self, op: str, **args: Any) -> Any:
        return self._post("/_bench", op, **args)

    def reset(self, latency: float, binance_limits: bool = True) -> None:
        """Same starting point for every scenario: a fresh rate-limit window, zero counters.

        A fresh window is what a collector started at that moment would meet; carrying the
        previous scenario's weight over would charge its requests to the next one.
        """
        self.control("set_latency", seconds=latency)
        for exchange in ("binance", "kraken", "okx"):
            self.control("set_rate_limit", exchange=exchange, enabled=binance_limits)
        if binance_limits:
            self.control("set_rate_limit", exchange="binance", **BINANCE_DEFAULT_LIMIT)
        self.control("reset_counters")

    def counters(self) -> dict[str, dict]:
        return self.control("counters")

    def prewarm(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> dict:
        return self.bench("prewarm", symbol=symbol, timeframe=timeframe, start_ms=start_ms,
                          end_ms=end_ms)


def throttled_counts(counters: dict[str, dict]) -> tuple[int, int]:
    """(429s, 418s) over every exchange."""
    return (sum(c.get("http_429", 0) for c in counters.values()),
            sum(c.get("http_418", 0) for c in counters.values()))


def measure_ceiling(sim: SimProcess, start_ms: int, seconds: float, *, cached: bool,
                    threads: int = 8) -> float:
    """Kline pages per second the simulator serves, no latency and no limit, from a thread pool.

    The client is a bare ``http.client`` loop, so this is close to the server's own limit
    (on two cores the client still takes some CPU from it).
    """
    url = urlsplit(sim.base_url)
    sim.reset(latency=0.0, binance_limits=False)
    sim.bench("cache_bypass", enabled=not cached)
    # Cached: the same few warm pages. Uncached: a new page per request, as a backfill asks.
    pages = [start_ms + k * 60_000_000 for k in range(4)]
    if cached:
        for since in pages:
            sim.prewarm("BTC/USDT", "1m", since, since + 1)
    deadline = time.monotonic() + seconds

    def client(index: int) -> int:
        done = 0
        while time.monotonic() < deadline:
            since = pages[done % 4] if cached else start_ms + (index * 100_000 + done) * 60_000
            conn = HTTPConnection(url.hostname, url.port, timeout=30)
            conn.request("GET", f"/binance/api/v3/klines?symbol=BTCUSDT&interval=1m"
                                f"&limit=1000&startTime={since}")
            conn.getresponse().read()
            conn.close()
            done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(client, range(threads)))
    rate = total / (time.monotonic() - started)
    sim.bench("cache_bypass", enabled=False)
    return rate
