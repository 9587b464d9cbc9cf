"""HISTORY of funding rates and open interest for many Binance perpetuals, against the limit.

    python -m bench.derivatives_history [--perps 20] [--days 90] [--period 5m] [--latency 0.1] [--keep]

The real CLI (``--mode history``) backfills ``--days`` of funding rates and of open interest
per ``--period`` for ``--perps`` USDⓈ-M perpetuals from a simulator with Binance's limits on
(2,400 weight a minute; fundingRate 500 and openInterestHist 1,000 requests per 5 minutes)
and a round-trip latency. Binance serves open interest for the last 30 days only: the run
reports the rest of the range unavailable, so 90 days give 90 days of funding and 30 of open
interest. The ideal is the fewest requests that carry every row (1,000 funding rates or 500
periods a request) at ccxt's pace for these endpoints (cost 1 x rateLimit 50 ms), or the
endpoint windows if they bind.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path

from bench.collector import Collector, work_directory, write_config
from simulator import ExchangeSimulator, default_rate_limits
from simulator.derivatives import truth_funding, truth_open_interest
from simulator.markets import MARKETS, add_market

EXCHANGE = "binanceusdm"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PERIOD_MS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": HOUR_MS, "4h": 4 * HOUR_MS}
OI_KEPT_DAYS = 30
FUNDING_PAGE, OI_PAGE = 1000, 500
CCXT_PACE_S = 0.050
# Bases of real USDⓈ-M perpetuals beyond the simulator's BTC, ETH and SOL; each is priced and
# funded by one of those three models, with its own noise.
EXTRA_BASES = ("BNB", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC", "TRX", "BCH", "NEAR", "APT",
               "ARB", "OP", "SUI", "FIL", "ATOM")
MODELS = ("BTC", "ETH", "SOL")


def perpetuals(count: int) -> list[str]:
    """``count`` unified symbols, listed on the simulated Binance USDⓈ-M (before it is built)."""
    symbols = [f"{base}/USDT:USDT" for base in MODELS + EXTRA_BASES][:count]
    if len(symbols) < count:
        raise ValueError(f"at most {len(MODELS) + len(EXTRA_BASES)} perpetuals")
    for i, symbol in enumerate(symbols):
        if (EXCHANGE, symbol) not in MARKETS:
            add_market(EXCHANGE, symbol, symbol.split("/")[0] + "USDT", priced_like=MODELS[i % 3])
    return symbols


def ideal(symbols: list[str], start: int, end: int, oi_from: dict[str, int], period: str) -> tuple[int, int, float]:
    """(rows, requests, seconds) at best: full pages, at ccxt's pace or the endpoint windows.
    ``oi_from``: where each symbol's served open interest begins (the run reports it)."""
    rows = 0
    funding_requests = oi_requests = 0
    for symbol in symbols:
        funding = len(truth_funding(EXCHANGE, symbol, start, end, end))
        oi = len(truth_open_interest(EXCHANGE, symbol, PERIOD_MS[period], oi_from.get(symbol, start), end, end))
        rows += funding + oi
        funding_requests += max(1, math.ceil(funding / FUNDING_PAGE))
        oi_requests += max(1, math.ceil(oi / OI_PAGE))
    requests = funding_requests + oi_requests
    windows = default_rate_limits()[EXCHANGE].endpoint_windows
    by_window = max(_window_seconds(funding_requests, *windows["fundingRate"]),
                    _window_seconds(oi_requests, *windows["openInterestHist"]))
    return rows, requests, max(requests * CCXT_PACE_S, by_window)


def _window_seconds(requests: int, limit: int, window_s: float) -> float:
    """The least time ``requests`` take through fixed windows of ``limit`` requests."""
    return (math.ceil(requests / limit) - 1) * window_s


def measure(perps: int, days: float, period: str, latency: float, workdir: Path) -> dict:
    symbols = perpetuals(perps)
    end = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS
    start = end - int(days * DAY_MS)
    sim = ExchangeSimulator().start()
    try:
        sim.set_latency(latency)
        series = [{"symbol": s, "timeframes": [], "funding_rates": True, "open_interest": [period]} for s in symbols]
        config = write_config(workdir / "c.yaml", {EXCHANGE: sim.ccxt_config(EXCHANGE)}, {EXCHANGE: series})
        began = time.monotonic()
        collector = Collector(config, "--mode", "history", "--start", _iso(start), "--end", _iso(end))
        code = collector.wait(3600)
        seconds = time.monotonic() - began
        summaries = collector.events("history_summary")   # one per series and dataset
        unavailable = collector.events("history_unavailable", dataset="open_interest")
        counters = sim.counters(EXCHANGE)
    finally:
        sim.stop()
    oi_from = {e["symbol"]: e["unavailable_until"] for e in unavailable}
    rows, best_requests, best_s = ideal(symbols, start, end, oi_from, period)
    requests = {name: counters.get(f"endpoint:{name}", 0) for name in ("fundingRate", "openInterestHist")}
    statuses = Counter(s.get("status") for s in summaries)
    return {"exit_code": code, "rows": sum(s.get("rows") or 0 for s in summaries), "ideal_rows": rows,
            "statuses": dict(statuses), "series": len(summaries),
            "seconds": round(seconds, 1), "requests": requests, "http_429": counters.get("status:429", 0),
            "ideal_requests": best_requests, "ideal_s": round(best_s, 1),
            "efficiency": round(best_s / seconds, 2) if seconds else None}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.derivatives_history",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--perps", type=int, default=20)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--period", choices=list(PERIOD_MS), default="5m")
    parser.add_argument("--latency", type=float, default=0.1, help="simulated round trip, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    with work_directory("bench-derivatives-", args.keep) as workdir:
        f = measure(args.perps, args.days, args.period, args.latency, workdir)
        print(f"{args.perps} perpetuals, {args.days:g} days of funding and {args.period} open interest (served: "
              f"{min(args.days, OI_KEPT_DAYS):g} days), latency {args.latency * 1000:.0f} ms, Binance's limits on")
        print("| exit | series by status | rows (ideal) | fundingRate requests | openInterestHist requests "
              "| ideal requests | 429s | s | ideal s | efficiency |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(f["statuses"].items()))
        print(f"| {f['exit_code']} | {statuses} | {f['rows']} ({f['ideal_rows']}) | "
              f"{f['requests']['fundingRate']} | "
              f"{f['requests']['openInterestHist']} | {f['ideal_requests']} | {f['http_429']} | {f['seconds']} | "
              f"{f['ideal_s']} | {f['efficiency']} |", flush=True)


if __name__ == "__main__":
    main()
