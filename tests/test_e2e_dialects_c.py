"""HISTORY, a rerun, AUDIT and LIVE end to end on KuCoin and Coinbase Advanced Trade: the real
CLI, the real ccxt over HTTP to the simulator's dialects, SQLite. Both serve 1m bars back to the
listing, so a range two days back is stored whole and equals ``truth()``:

* KuCoin serves up to 1,500 bars a request (ccxt's ``features`` and its code agree); the
  collector pages by its ``history_page_limit`` (1,000);
* Coinbase serves at most 350 and ccxt asks for 300 at most, so pages hold 300 bars.
"""

from __future__ import annotations

import math

import pytest

from core.timefmt import parse_iso_utc
from tests.e2e_support import (
    HOUR_MS,
    MINUTE_MS,
    Collector,
    e2e_config,
    floor_to,
    iso_arg,
    newest_bars,
    now_ms,
    poll,
    rewritten,
    sqlite_latest,
    truth_bars,
    truth_diff,
    values_of,
    wait_for_trading_minutes,
    wait_until_the_open_bar_ends_final,
)

DAY_MS = 24 * HOUR_MS
# exchange -> (symbol, bars a candle request carries for the collector)
CASES = {"kucoin": ("BTC/USDT", 1000), "coinbase": ("BTC/USD", 300)}
CANDLE_ENDPOINTS = {"kucoin": "market/candles", "coinbase": "brokerage/market/products/candles"}


def candle_requests(sim, exchange: str) -> int:
    return sim.counters(exchange).get(f"endpoint:{CANDLE_ENDPOINTS[exchange]}", 0)


def run(sim, tmp_path, collectors, exchange: str, *args: str) -> Collector:
    config = e2e_config(tmp_path, sim, {exchange: [{"symbol": CASES[exchange][0], "timeframes": ["1m"]}]},
                        name="history.yaml", settings={"health_port": 0})
    collector = Collector(config, *args)
    collectors.append(collector)
    code = collector.wait(240)
    assert code == 0, (code, collector.stderr()[-3000:])
    return collector


@pytest.mark.parametrize("exchange", ["kucoin", pytest.param("coinbase", marks=pytest.mark.slow)])  # ~11 s, ~19 s
def test_history_equals_truth_then_rerun_fetches_nothing_and_audit_is_clean(
        sim, tmp_path, collectors, exchange: str) -> None:
    sim.set_rate_limit(exchange, enabled=False)
    symbol, page = CASES[exchange]
    series = (exchange, symbol, "1m")
    start = floor_to(now_ms(), HOUR_MS) - 2 * DAY_MS
    end = start + 2 * DAY_MS - HOUR_MS
    history = run(sim, tmp_path, collectors, exchange, "--mode", "history", "--start", iso_arg(start),
                  "--end", iso_arg(end))
    [summary] = history.events("history_summary")
    assert (summary["status"], summary["unavailable"]) == ("complete", []), summary
    store = values_of(sqlite_latest(tmp_path / "md.sqlite").get(series, {}))
    assert truth_diff(store, truth_bars(series, start, end)) == {}
    assert summary["rows"] == len(store) > 2000
    # The fewest requests that carry the range; a window ending in a minute without trades
    # costs one more request (was it cut short?), and a few windows do.
    ideal = math.ceil((end - start) / MINUTE_MS / page)
    assert ideal <= candle_requests(sim, exchange) <= ideal * 1.1 + 2

    before = candle_requests(sim, exchange)
    run(sim, tmp_path, collectors, exchange, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    assert candle_requests(sim, exchange) == before                  # a rerun fetches nothing
    assert values_of(sqlite_latest(tmp_path / "md.sqlite")[series]) == store

    audit = run(sim, tmp_path, collectors, exchange, "--mode", "audit", "--start", iso_arg(start),
                "--end", iso_arg(end))
    [result] = audit.events("audit_summary")
    assert result["repairable"] == 0 and result["error"] is None, result
    assert {g["kind"] for g in result["gaps"]} <= {"no_trades"}, result["gaps"]
    assert result["stored"] == len(store)


def _live(sim, tmp_path, collectors, interval: int) -> tuple[Collector, list[tuple[str, str, str]]]:
    exchanges = {exchange: [{"symbol": symbol, "timeframes": ["1m"]}] for exchange, (symbol, _) in CASES.items()}
    for exchange in exchanges:
        sim.set_rate_limit(exchange, enabled=False)
    series = [(exchange, symbol, "1m") for exchange, (symbol, _) in CASES.items()]
    wait_for_trading_minutes(series)
    config = e2e_config(tmp_path, sim, exchanges, settings={"update_interval_seconds": interval})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    return collector, series


def test_live_stores_closed_bars_final_and_updates_the_open_one(sim, tmp_path, collectors) -> None:
    collector, series = _live(sim, tmp_path, collectors, 1)
    path = tmp_path / "md.sqlite"
    first = poll(lambda: newest_bars(path, series, at_least=2), 30, "a closed and an open bar per series")
    later = poll(lambda: rewritten(path, series, first, 3_000), 30, "the open bar rewritten")
    assert collector.terminate() == 0
    store = sqlite_latest(path)
    for key in series:
        cycle = max(line["ts"] for line in collector.events("live_cycle_complete", exchange=key[0]))
        cutoff = floor_to(parse_iso_utc(cycle), MINUTE_MS)
        closed = {ts: bar for ts, bar in values_of(store[key]).items() if ts < cutoff}
        assert closed and truth_diff(closed, truth_bars(key, min(closed), cutoff)) == {}, key
        (ts, older), (ts_later, newer) = first[key], later[key]
        if ts_later == ts:
            assert newer.values != older.values, key                  # the open bar moved on


@pytest.mark.slow
def test_live_over_a_bar_close_the_bar_that_was_open_ends_final(sim, tmp_path, collectors) -> None:
    """Up to ~70 s: the bar open at the first sample closes, and its stored version becomes
    the exchange's final one on both dialects."""
    collector, series = _live(sim, tmp_path, collectors, 2)
    path = tmp_path / "md.sqlite"
    wait_until_the_open_bar_ends_final(path, series)
    assert collector.terminate() == 0
