"""LIVE with a universe, a delisting and an exchange over its request budget, through the CLI."""

from __future__ import annotations

import time

import pytest

from core.timefmt import parse_iso_utc
from tests.e2e_support import (
    MINUTE_MS,
    Collector,
    floor_to,
    metrics,
    poll,
    sqlite_latest,
    truth_bars,
    wait_all_final,
)
from tests.shard_support import universe_config


@pytest.mark.slow
def test_live_universe_changes_delisting_and_rate_budget(sim, tmp_path, collectors) -> None:
    for symbol, volume in (("BTC/USDT", 3e9), ("ETH/USDT", 1e9), ("SOL/USDT", 1e8)):
        sim.set_quote_volume("binance", symbol, volume)
    sim.set_rate_limit("kraken", enabled=False)   # its 1 request/s; ccxt is sped up here
    bodies = {
        "binance": {"universe": {"quote": ["USDT"], "top": 1, "timeframes": ["1m"],
                                 "refresh_minutes": 0.05, "backfill_hours": 0.5}},
        "kraken": {"symbols": [{"symbol": "BTC/USD", "timeframes": ["1m"]},
                               {"symbol": "ETH/USD", "timeframes": ["1m"]}]},
        # 500 ms a request: 4 series need 2 s per 1 s interval, so one is polled per cycle.
        "okx": {"symbols": [
            {"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]}, {"symbol": "ETH/USDT", "timeframes": ["1m", "5m"]}]},
    }
    config = universe_config(tmp_path, sim, bodies, ccxt={"okx": {"rateLimit": 1000}})
    collector = Collector(config)
    collectors.append(collector)
    db = tmp_path / "md.sqlite"

    selected = collector.wait_for(lambda: collector.events("universe_selected", exchange="binance"), 40,
                                  "the universe")
    assert selected[0]["count"] == 1 and selected[0]["symbols"] == ["BTC/USDT"]
    sim.set_quote_volume("binance", "ETH/USDT", 9e9)
    change = collector.wait_for(lambda: collector.events("universe_changed", exchange="binance"), 30,
                                "the universe to change")[0]
    assert change["added"] == ["ETH/USDT"] and change["removed"] == ["BTC/USDT"]
    # The entering symbol is backfilled backfill_hours, then polled.
    entered = ("binance", "ETH/USDT", "1m")
    entered_at = floor_to(parse_iso_utc(change["ts"]), MINUTE_MS)
    backfilled = set(truth_bars(entered, entered_at - 28 * MINUTE_MS, entered_at))   # minutes with trades
    poll(lambda: backfilled <= set(sqlite_latest(db).get(entered, {})), 40, "ETH/USDT backfilled")

    sim.set_listed("kraken", "ETH/USD", False)
    collector.wait_for(lambda: collector.events("series_delisted", exchange="kraken"), 30, "the delisting")
    time.sleep(4)   # several more cycles: the delisted series is not asked for again
    assert len(collector.events("series_delisted", exchange="kraken")) == 1
    assert len(collector.events("worker_spawned")) == 3            # nothing crashed

    exceeded = collector.events("rate_budget_exceeded", exchange="okx")
    assert len(exceeded) == 1 and exceeded[0]["need_s"] == 2.0 and exceeded[0]["per_cycle"] == 1
    assert not collector.events("rate_budget_exceeded", exchange="binance")
    values = metrics(collector)
    assert values['tda_rate_budget_ratio{exchange="okx"}'] == 2.0
    assert values['tda_rate_budget_ratio{exchange="binance"}'] < 0.5
    # Over budget, every okx series still advances and its closed bars are final.
    okx = [("okx", s, tf) for s in ("BTC/USDT", "ETH/USDT") for tf in ("1m", "5m")]
    wait_all_final(lambda: sqlite_latest(db), okx + [("kraken", "BTC/USD", "1m")], 60, lag_ms=12_000)
    assert collector.terminate() == 0
