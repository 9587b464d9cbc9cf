"""LIVE end to end: the real CLI polling the exchange simulator through ccxt into SQLite,
logs shipped to the Loki fake. Closed bars must end with the exchange's final values
(``truth()``), and the open bar must be stored and keep being updated.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.timefmt import parse_iso_utc
from simulator import served_bar
from tests.e2e_support import (
    TIMEFRAME_MS,
    Collector,
    StoredBar,
    closed_bars_diff,
    e2e_config,
    floor_to,
    last_cycle_starts,
    loki_env,
    newest_bars,
    now_ms,
    poll,
    rewritten,
    series_list,
    sqlite_latest,
    wait_for_trading_minutes,
)

ONE_MINUTE = [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]


def assert_plausible_open_version(series: tuple, ts: int, bar: StoredBar) -> None:
    """A stored version of an open bar: its open is final, and its high, low and volume do not
    go beyond what the bar reaches by its close (the simulator's bars only grow)."""
    final = served_bar(*series, ts, ts + TIMEFRAME_MS[series[2]])
    o, h, l, _, v = bar.values
    assert o == final[1] and h <= final[2] and l >= final[3] and 0 <= v <= final[5], (series, bar, final)


def assert_closed_bars_equal_truth(collector: Collector, path: Path, series: list[tuple]) -> dict:
    """Every bar that closed before the last cycle, from the first stored one on, is final."""
    store = sqlite_latest(path)
    problems = closed_bars_diff(store, series, last_cycle_starts(collector, {key[0] for key in series}))
    assert not problems, problems
    return store


def assert_loki_got_labelled_batches(loki, exchanges) -> None:
    entries = loki.entries()
    assert entries and loki.pushes < len(entries), (loki.pushes, len(entries))      # batched
    assert {tuple(sorted(labels)) for labels, _, _ in entries} == {
        ("environment", "exchange", "level", "service_name")}
    assert {labels["environment"] for labels, _, _ in entries} == {"test"}
    cycles = {labels["exchange"] for labels, _, line in entries if '"live_cycle_complete"' in line}
    assert cycles == set(exchanges), cycles
    assert all("e2e-loki-password" not in line for _, _, line in entries)


def test_live_stores_the_closed_bar_and_keeps_updating_the_open_one(sim, tmp_path, collectors, loki) -> None:
    """~15 s: the previous (closed) bar lands with final values; the open bar is rewritten."""
    exchanges = {"binance": ONE_MINUTE, "okx": ONE_MINUTE}
    series = [(exchange, "BTC/USDT", "1m") for exchange in exchanges]
    wait_for_trading_minutes(series)
    config = e2e_config(tmp_path, sim, exchanges, settings={"update_interval_seconds": 1})
    collector = Collector(config, env=loki_env(loki))
    collectors.append(collector)
    collector.wait_healthy(60)
    path = tmp_path / "md.sqlite"
    first = poll(lambda: newest_bars(path, series, at_least=2), 20, "a closed and an open bar per series")
    later = poll(lambda: rewritten(path, series, first, 3_000), 20, "the open bar rewritten 3 s later")
    assert collector.terminate() == 0
    ended = now_ms()

    store = assert_closed_bars_equal_truth(collector, path, series)
    for key in series:
        first_cycle = parse_iso_utc(collector.events("live_cycle_complete", exchange=key[0])[0]["ts"])
        assert min(store[key]) < floor_to(first_cycle, 60_000)            # a bar closed before the start
        assert max(store[key]) >= floor_to(ended, 60_000) - 60_000        # kept up to the end
        (ts, older), (ts_later, newer) = first[key], later[key]
        assert_plausible_open_version(key, ts, older)
        assert_plausible_open_version(key, ts_later, newer)
        if ts_later == ts:
            assert newer.values != older.values                           # the open bar moved on
    assert_loki_got_labelled_batches(loki, exchanges)


@pytest.mark.slow
def test_live_for_minutes_every_closed_bar_ends_final_and_the_open_bar_is_current(
        sim, tmp_path, collectors, loki) -> None:
    exchanges = {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]},
                             {"symbol": "ETH/USDT", "timeframes": ["1m"]}],
                 "okx": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}, {"symbol": "SOL/USDT", "timeframes": ["1m"]}],
                 "kraken": [{"symbol": "BTC/USD", "timeframes": ["1m"]}]}
    series = series_list(exchanges)
    # The run spans the minute before the start to the third after it: all must trade for
    # the open bar to contain now and for bars to close during the run.
    wait_for_trading_minutes(series, before=1, after=3)
    config = e2e_config(tmp_path, sim, exchanges, settings={"update_interval_seconds": 5})
    collector = Collector(config, env=loki_env(loki))
    collectors.append(collector)
    collector.wait_healthy(60)
    path = tmp_path / "md.sqlite"
    samples: dict[tuple, list[tuple[int, StoredBar]]] = {key: [] for key in series}
    run_until = time.monotonic() + 100
    while time.monotonic() < run_until:
        newest = newest_bars(path, series) or {}
        sampled = now_ms()
        for key, (ts, bar) in newest.items():
            step = TIMEFRAME_MS[key[2]]
            # the open bar contains now (or, in the seconds after a close, the bar that just closed)
            assert floor_to(sampled, step) - step <= ts <= floor_to(sampled, step), (key, ts, sampled)
            samples[key].append((ts, bar))
        assert collector.proc.poll() is None
        time.sleep(7)
    assert collector.terminate() == 0

    store = assert_closed_bars_equal_truth(collector, path, series)
    for key in series:
        if key[2] != "1m":
            continue
        assert len(store[key]) >= 3, (key, len(store[key]))          # bars closed during the run
        rewrites = [(ts, a, b) for (ts, a), (ts_b, b) in zip(samples[key], samples[key][1:]) if ts == ts_b]
        assert len(rewrites) >= 8, (key, len(rewrites))
        for ts, older, newer in rewrites:
            assert newer.ingested_at >= older.ingested_at
            assert_plausible_open_version(key, ts, older)
        assert any(newer.values != older.values for _, older, newer in rewrites), key
    assert not collector.events("fetch_error") and not collector.events("sink_write_error")
    assert {l["exchange"] for l in collector.events("live_cycle_complete")} == set(exchanges)
    assert_loki_got_labelled_batches(loki, exchanges)
