"""The exchange simulator as the benchmark runs it: in its own process, with extra Binance
symbols and a cache of closed Binance kline pages.

Why a separate process: the simulator is pure Python. Inside the bench process it would
share the GIL with the worker under test and slow it down.

Why extra symbols: the simulator lists three symbols per exchange. The LIVE benchmark needs
500 series, and ``ExchangeConfig`` rejects a symbol listed twice. So Binance gets more
markets (``simulator.add_market``), in this process only. They reuse the BTC/ETH/SOL price
models under new names (``S001/USDT`` ...). The dialect only formats what the model gives it.

Why a page cache: rendering a 1,000-bar kline page costs the simulator 11-20 ms of CPU,
which is 55-100 % of a core at Binance's 50 requests/s. Closed bars never change, so a
full page whose newest bar has closed can be served again from the bytes rendered the
first time. The cache is a Binance dialect (:class:`CachingBinance`): latency, the rate
limiter, the counters and the faults all stay in the simulator, in front of it.
``prewarm`` renders the pages a backfill asks for (cursor and window sequences) before the
clock starts.

    python -m bench.sim_server --port 0 --extra-binance-symbols 100

The first stdout line is JSON: ``{"base_url": ..., "ccxt": {exchange: config}}``.
``POST /_bench {"op": "prewarm" | "cache_stats" | "cache_bypass", ...}`` drives the
additions; ``/_control`` still works as documented in the ``simulator`` package.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable

from simulator import EXCHANGES, Binance, ExchangeSimulator, Reply, Request, add_market

_BASES = ("BTC", "ETH", "SOL")
_TF_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
          "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
          "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000}


def extra_binance_symbols(count: int) -> list[str]:
    """Unified symbols the bench adds to Binance (same list in the bench and the server)."""
    return [f"S{i:03d}/USDT" for i in range(1, count + 1)]


def add_binance_markets(count: int) -> None:
    """Must run before the simulator is built: each dialect copies the markets at construction."""
    for i, symbol in enumerate(extra_binance_symbols(count)):
        add_market("binance", symbol, symbol.replace("/", ""), priced_like=_BASES[i % len(_BASES)])


class CachingBinance(Binance):
    """Binance klines, with each closed full page kept as the bytes rendered the first time."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple, bytes] = {}
        self._cache_lock = threading.Lock()
        self._cache_stats = {"hits": 0, "misses": 0, "stored": 0}
        self._bypass = False

    @staticmethod
    def _key(req: Request) -> tuple | None:
        q = req.query
        if req.endpoint != "klines" or req.mutate is not None or "startTime" not in q:
            return None
        return (q.get("symbol"), q.get("interval"), q.get("limit"), q.get("startTime"),
                q.get("endTime"))

    def handle(self, req: Request) -> Reply:
        key = None if self._bypass else self._key(req)
        if key is not None:
            with self._cache_lock:
                body = self._cache.get(key)
                self._cache_stats["hits" if body is not None else "misses"] += 1
            if body is not None:
                return Reply(200, body)  # a fresh Reply: the simulator adds headers to it
        reply = super().handle(req)
        if key is not None and self._closed_full_page(reply, req):
            body = json.dumps(reply.body, separators=(",", ":")).encode()
            with self._cache_lock:
                self._cache[key] = body
                self._cache_stats["stored"] += 1
            return Reply(200, body)
        return reply

    @staticmethod
    def _closed_full_page(reply: Reply, req: Request) -> bool:
        """A full page whose newest bar has closed can never change (row[6] = close time)."""
        rows = reply.body
        limit = int(req.query.get("limit") or 500)
        return (reply.status == 200 and isinstance(rows, list) and len(rows) == min(limit, 1000)
                and rows[-1][6] < req.now_ms)

    def cache_stats(self) -> dict:
        with self._cache_lock:
            return {**self._cache_stats, "pages": len(self._cache),
                    "bytes": sum(map(len, self._cache.values()))}

    def cache_bypass(self, enabled: bool) -> bool:
        self._bypass = bool(enabled)
        return self._bypass

    def prewarm(self, now_ms: Callable[[], int], symbol: str, timeframe: str, start_ms: int,
                end_ms: int, limit: int = 1000) -> dict:
        """Render every page a backfill of [start, end) may ask for, before the clock starts.

        Two sequences: the since-cursor one (start, then newest bar + 1 bar: the baseline
        and a sequential backfill) and fixed windows of ``limit`` bars from the second page
        on (worker/backfill.py pages concurrently in windows once the first page is exact).
        ``now_ms`` is the exchange clock.
        """
        native = symbol.replace("/", "")
        step = _TF_MS[timeframe]
        started = time.perf_counter()
        rendered = set()

        def page(since: int) -> list:
            query = {"symbol": native, "interval": timeframe, "limit": str(limit),
                     "startTime": str(since)}
            reply = self.handle(Request("klines", query, now_ms()))
            rendered.add(since)
            return json.loads(reply.body) if isinstance(reply.body, bytes) else reply.body

        since, second, needed = start_ms, None, 0
        while since < end_ms:
            rows = page(since)
            needed += 1
            if not rows or len(rows) < limit:
                break
            since = int(rows[-1][0]) + step
            second = since if second is None else second
        window = second
        while window is not None and window < end_ms:
            if window not in rendered:
                page(window)
            window += limit * step
        # "pages": what the cursor sequence needs, the fewest requests that cover the range.
        return {"pages": needed, "rendered": len(rendered),
                "seconds": round(time.perf_counter() - started, 3)}


def bench_simulator(port: int = 0, *, keep_alive: bool = False) -> ExchangeSimulator:
    """The simulator with the caching Binance, its cache steered at ``/_bench``."""
    binance = CachingBinance()
    sim = ExchangeSimulator(port=port, dialects={"binance": binance}, keep_alive=keep_alive)
    sim.add_control("/_bench", {
        "prewarm": lambda **args: binance.prewarm(lambda: sim.exchange_now_ms("binance"), **args),
        "cache_stats": binance.cache_stats,
        "cache_bypass": binance.cache_bypass})
    return sim


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--extra-binance-symbols", type=int, default=0)
    parser.add_argument("--keep-alive", action="store_true",
                        help="HTTP/1.1 with persistent connections, as the exchanges serve it")
    args = parser.parse_args(argv)
    add_binance_markets(args.extra_binance_symbols)
    sim = bench_simulator(port=args.port, keep_alive=args.keep_alive).start()
    print(json.dumps({"base_url": sim.base_url,
                      "ccxt": {ex: sim.ccxt_config(ex) for ex in EXCHANGES}}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
