"""HISTORY efficiency against the rate limit on the Gate, Bitget, Hyperliquid, KuCoin, Coinbase and Bybit
dialects.

    python -m bench.dialects_history [--days 60] [--latency 0.1] [--keep]

One series per exchange, ``--days`` of 1m bars ending an hour ago, fetched by the real CLI
(``--mode history``) from a simulator with each exchange's real limits on and a round-trip
latency. The ideal is the fewest requests that can carry what the exchange serves, sent at the
pace the exchange allows (or ccxt's, if slower):

* gate: serves the newest 10,000 bars only, 1,000 a request, 200 requests / 10 s;
* bitget: serves everything, 200 a request from its archive (ccxt asks it for 1m bars older
  than 29 days), 20 requests / s;
* hyperliquid: serves the newest 5,000 bars only, up to 5,000 a request; 1,200 weight a
  minute, a snapshot weighing 20 + 1 per 60 bars returned;
* kucoin: serves everything, 1,500 a request; a public pool of 2,000 weight / 30 s, klines
  weighing 3;
* coinbase: serves everything, 300 a request (ccxt's cap; Coinbase refuses over 350);
  10 public requests / s.
* bybit: serves everything, 1,000 a request (each page bounded by an end), 600 requests / 5 s
  per IP; ccxt paces a kline request at 20 ms x cost 5 = 100 ms, the slower of the two.

``measure(exchange, days, latency, workdir)`` is what a bench scenario calls; it returns
one dict per exchange with the figures printed here.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from bench.collector import Collector, work_directory, write_config
from simulator import ExchangeSimulator, default_rate_limits

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
SYMBOLS = {"gate": "BTC/USDT", "bitget": "BTC/USDT", "hyperliquid": "BTC/USDC", "kucoin": "BTC/USDT",
           "coinbase": "BTC/USD", "bybit": "BTC/USDT"}
CANDLES = {"gate": "spot/candlesticks", "bitget": "spot/market/", "hyperliquid": "info/candleSnapshot",
           "kucoin": "market/candles", "coinbase": "brokerage/market/products/candles", "bybit": "endpoint:kline"}
# exchange -> (bars it serves back at most, bars per request at most, its token bucket:
# size and refill per second, and what a full request costs from it)
SERVES = {"gate": (10_000, 1000, 200, 20.0, 1), "bitget": (None, 200, 20, 20.0, 1),
          "hyperliquid": (5_000, 5000, 1200, 20.0, 20 + 5000 // 60),
          "kucoin": (None, 1500, 2000, 2000 / 30, 3), "coinbase": (None, 300, 10, 10.0, 1),
          "bybit": (None, 1000, 600, 120.0, 1)}
# ccxt's spacing of two candle requests: rateLimit (KuCoin: the adapter's 16 ms) x the endpoint's cost.
CCXT_PACE_S = {"gate": 0.050, "bitget": 0.050, "hyperliquid": 4 * 0.050, "kucoin": 3 * 0.016,
               "coinbase": 3 * 0.034, "bybit": 5 * 0.020}


def ideal(exchange: str, bars: int) -> tuple[int, float]:
    """(requests, seconds) at best for ``bars`` of 1m history on ``exchange``: the fewest
    requests, sent as fast as a full bucket and its refill (and ccxt's pace) allow."""
    served_back, per_request, bucket, refill, cost = SERVES[exchange]
    served = bars if served_back is None else min(bars, served_back)
    requests = math.ceil(served / per_request)
    return requests, max(requests * CCXT_PACE_S[exchange], (requests * cost - bucket) / refill)


def measure(exchange: str, days: float, latency: float, workdir: Path) -> dict:
    """One HISTORY run of ``days`` of 1m bars on ``exchange``; its figures and the ideal."""
    end = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS
    start = end - int(days * 1440) * MINUTE_MS
    sim = ExchangeSimulator().start()
    try:
        sim.set_latency(latency)
        cfg = default_rate_limits()[exchange]
        sim.set_rate_limit(exchange, enabled=True, limit=cfg.limit, window=cfg.window)
        folder = workdir / exchange
        folder.mkdir(parents=True, exist_ok=True)
        config = write_config(folder / "c.yaml", {exchange: sim.ccxt_config(exchange)},
                              {exchange: [{"symbol": SYMBOLS[exchange], "timeframes": ["1m"]}]})
        began = time.monotonic()
        collector = Collector(config, "--mode", "history", "--start", _iso(start), "--end", _iso(end))
        code = collector.wait(1800)
        seconds = time.monotonic() - began
        [summary] = collector.events("history_summary") or [{}]
        counters = sim.counters(exchange)
    finally:
        sim.stop()
    requests = sum(n for key, n in counters.items() if key.startswith("endpoint:") and CANDLES[exchange] in key)
    best_requests, best_s = ideal(exchange, (end - start) // MINUTE_MS)
    return {"exchange": exchange, "exit_code": code, "status": summary.get("status"),
            "rows": summary.get("rows"), "unavailable": summary.get("unavailable"), "seconds": round(seconds, 1),
            "candle_requests": requests, "http_429": counters.get("rate_limited", 0),
            "ideal_requests": best_requests, "ideal_s": round(best_s, 1),
            "efficiency": round(best_s / seconds, 2) if seconds else None}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dialects_history", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--latency", type=float, default=0.1, help="simulated round trip, seconds")
    parser.add_argument("--only", nargs="+", choices=list(SYMBOLS), default=list(SYMBOLS))
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    with work_directory("bench-dialects-", args.keep) as workdir:
        print("| exchange | rows | unavailable | s | candle requests | rate-limited | ideal requests | ideal s |")
        print("|---|---|---|---|---|---|---|---|")
        for exchange in args.only:
            f = measure(exchange, args.days, args.latency, workdir)
            print(f"| {exchange} | {f['rows']} | {', '.join(f['unavailable'] or []) or '-'} | {f['seconds']} | "
                  f"{f['candle_requests']} | {f['http_429']} | {f['ideal_requests']} | {f['ideal_s']} |",
                  flush=True)


if __name__ == "__main__":
    main()
