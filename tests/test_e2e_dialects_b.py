"""HISTORY, a rerun, AUDIT and LIVE end to end on Gate, Bitget and Hyperliquid: the real CLI,
the real ccxt over HTTP to the simulator's dialects, SQLite. Every stored bar equals
``truth()``, and the part of a range an exchange does not serve is reported exactly:

* Gate refuses a ``from`` more than 10,000 bars back (HTTP 400), so a 1m range 8 days back
  is served from about 6.9 days back;
* Hyperliquid keeps only the newest 5,000 bars of a series;
* Bitget serves 1m bars older than 30 days only from its 200-a-page archive endpoint,
  which ccxt switches to 29 days back: a range across that border is served whole.
"""

from __future__ import annotations

import pytest

from core.timefmt import iso_utc, parse_iso_utc
from tests.e2e_support import (
    HOUR_MS,
    MINUTE_MS,
    Collector,
    e2e_config,
    events_by,
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
# exchange -> (symbol, how far back the range starts, its length, bars the exchange serves back)
CASES = {
    "gate": ("BTC/USDT", 8 * DAY_MS, 8 * DAY_MS - HOUR_MS, 10_000),
    "hyperliquid": ("BTC/USDC", 4 * DAY_MS, 4 * DAY_MS - HOUR_MS, 5_000),
    "bitget": ("BTC/USDT", 30 * DAY_MS, 2 * DAY_MS, None),
}
CANDLE_ENDPOINTS = {"gate": "spot/candlesticks", "hyperliquid": "info/candleSnapshot",
                    "bitget": "spot/market/"}


def candle_requests(sim, exchange: str) -> int:
    return sum(n for key, n in sim.counters(exchange).items()
               if key.startswith("endpoint:") and CANDLE_ENDPOINTS[exchange] in key)


def run(sim, tmp_path, collectors, exchange: str, *args: str, name: str) -> Collector:
    symbol = CASES[exchange][0]
    config = e2e_config(tmp_path, sim, {exchange: [{"symbol": symbol, "timeframes": ["1m"]}]}, name=name,
                        settings={"health_port": 0})
    collector = Collector(config, *args)
    collectors.append(collector)
    code = collector.wait(240)
    assert code == 0, (code, collector.stderr()[-3000:])
    return collector


@pytest.mark.parametrize("exchange", [  # four CLI runs each; ~20 s for a window to bisect or skip
    pytest.param("gate", marks=pytest.mark.slow), pytest.param("hyperliquid", marks=pytest.mark.slow), "bitget"])
def test_history_equals_truth_or_reports_the_unserved_head_then_rerun_and_audit(
        sim, tmp_path, collectors, exchange: str) -> None:
    sim.set_rate_limit(exchange, enabled=False)
    symbol, back, length, window = CASES[exchange]
    series = (exchange, symbol, "1m")
    start = floor_to(now_ms(), HOUR_MS) - back
    end = start + length
    began = now_ms()
    history = run(sim, tmp_path, collectors, exchange, "--mode", "history", "--start", iso_arg(start),
                  "--end", iso_arg(end), name="history.yaml")
    ended = now_ms()
    [summary] = history.events("history_summary")
    store = values_of(sqlite_latest(tmp_path / "md.sqlite").get(series, {}))
    served_from = start
    if window is None:
        assert (summary["status"], summary["unavailable"]) == ("complete", []), summary
        assert not history.events("history_unavailable")
    else:
        # The last event holds the whole head (joined when the window moved during the run).
        event = events_by(history, "history_unavailable", "exchange", "symbol", "timeframe")[series][-1]
        served_from = event["unavailable_until"]
        # The oldest bar served when the run began, or a later one when the window moved on.
        assert floor_to(began, MINUTE_MS) - (window - 1) * MINUTE_MS <= served_from
        assert served_from <= min(truth_bars(series, floor_to(ended, MINUTE_MS) - (window - 1) * MINUTE_MS, end))
        assert event["unavailable_from"] == start
        assert summary["status"] == "partial_unavailable"
        assert summary["unavailable"] == [f"[{iso_utc(start)}, {iso_utc(served_from)})"]
    assert truth_diff(store, truth_bars(series, served_from, end)) == {}
    assert summary["rows"] == len(store) > 1000

    before = candle_requests(sim, exchange)
    run(sim, tmp_path, collectors, exchange, "--mode", "history", "--start", iso_arg(start),
        "--end", iso_arg(end), name="history.yaml")
    assert candle_requests(sim, exchange) == before                  # a rerun fetches nothing
    assert values_of(sqlite_latest(tmp_path / "md.sqlite")[series]) == store

    audit = run(sim, tmp_path, collectors, exchange, "--mode", "audit", "--start", iso_arg(served_from),
                "--end", iso_arg(end), name="history.yaml")
    [result] = audit.events("audit_summary")
    assert result["repairable"] == 0 and result["error"] is None, result
    assert {g["kind"] for g in result["gaps"]} <= {"no_trades"}, result["gaps"]
    assert result["stored"] == len(store)
    if window is not None:                      # the whole range: its head is unavailable, not missing
        audit = run(sim, tmp_path, collectors, exchange, "--mode", "audit", "--start", iso_arg(start),
                    "--end", iso_arg(end), name="history.yaml")
        [result] = audit.events("audit_summary")
        head = [g for g in result["gaps"] if g["start_ms"] == start]
        assert head and head[0]["kind"] == "unavailable" and result["repairable"] == 0, result["gaps"][:3]


def test_live_stores_closed_bars_final_and_updates_the_open_one(sim, tmp_path, collectors) -> None:
    exchanges = {exchange: [{"symbol": symbol, "timeframes": ["1m"]}]
                 for exchange, (symbol, *_) in CASES.items()}
    for exchange in exchanges:
        sim.set_rate_limit(exchange, enabled=False)
    series = [(exchange, symbol[0]["symbol"], "1m") for exchange, symbol in exchanges.items()]
    wait_for_trading_minutes(series)
    config = e2e_config(tmp_path, sim, exchanges, settings={"update_interval_seconds": 1})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    path = tmp_path / "md.sqlite"
    first = poll(lambda: newest_bars(path, series, at_least=2), 30, "a closed and an open bar per series")
    later = poll(lambda: rewritten(path, series, first, 3_000), 30, "the open bar rewritten")
    assert collector.terminate() == 0
    store = sqlite_latest(path)
    cycles = {e: max(line["ts"] for line in collector.events("live_cycle_complete", exchange=e))
              for e in exchanges}
    for key in series:
        cutoff = floor_to(parse_iso_utc(cycles[key[0]]), MINUTE_MS)
        closed = {ts: bar for ts, bar in values_of(store[key]).items() if ts < cutoff}
        assert closed and truth_diff(closed, truth_bars(key, min(closed), cutoff)) == {}, key
        (ts, older), (ts_later, newer) = first[key], later[key]
        if ts_later == ts:
            assert newer.values != older.values, key                  # the open bar moved on


@pytest.mark.slow
def test_live_over_a_bar_close_the_bar_that_was_open_ends_final(sim, tmp_path, collectors) -> None:
    """Up to ~70 s: the bar open at the first sample closes, and its stored version becomes
    the exchange's final one on every dialect."""
    exchanges = {exchange: [{"symbol": symbol, "timeframes": ["1m"]}]
                 for exchange, (symbol, *_) in CASES.items()}
    for exchange in exchanges:
        sim.set_rate_limit(exchange, enabled=False)
    config = e2e_config(tmp_path, sim, exchanges, settings={"update_interval_seconds": 2})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    path = tmp_path / "md.sqlite"
    series = [(exchange, entries[0]["symbol"], "1m") for exchange, entries in exchanges.items()]
    wait_until_the_open_bar_ends_final(path, series)
    assert collector.terminate() == 0
