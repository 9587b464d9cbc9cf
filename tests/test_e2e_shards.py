"""Three shards over one config (shard_by series, three exchanges) against the simulator and
the BigQuery fake: together exactly the truth, each series fetched by one shard, a killed
shard loses nothing, and a HISTORY fan-out covers its range once."""

from __future__ import annotations

import time

import pytest

from tests.e2e_support import (
    Collector,
    bigquery_env,
    bigquery_storage,
    bigquery_table_latest,
    floor_to,
    iso_arg,
    now_ms,
    truth_bars,
    truth_diff,
    values_of,
    wait_all_final,
)
from tests.shard_support import fetchers, universe_config

BODIES = {
    "binance": {"universe": {"quote": ["USDT"], "timeframes": ["1m"]}},
    "okx": {"symbols": [{"symbol": s, "timeframes": ["1m"]} for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")]},
    "kraken": {"symbols": [{"symbol": s, "timeframes": ["1m"]} for s in ("BTC/USD", "ETH/USD", "SOL/USD")]},
}
SERIES = [("binance", s, "1m") for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")] + \
         [(ex, s["symbol"], "1m") for ex in ("okx", "kraken") for s in BODIES[ex]["symbols"]]


@pytest.mark.slow
def test_three_shards_store_the_truth_once_and_survive_a_kill(sim, tmp_path, bigquery_fake, collectors) -> None:
    sim.set_rate_limit("kraken", enabled=False)   # ccxt is sped up for kraken in these tests
    configs = [universe_config(tmp_path, sim, BODIES, settings={"shard_by": "series"},
                               storage=bigquery_storage(), name=f"shard{i}.yaml", client=f"shard{i}")
               for i in range(3)]
    env = bigquery_env(bigquery_fake)

    def start(i: int, *args: str) -> Collector:
        collector = Collector(configs[i], "--shard", f"{i}/3", *args, env=env)
        collectors.append(collector)
        return collector

    shards = [start(i) for i in range(3)]
    for shard in shards:
        shard.wait_healthy(60)
    time.sleep(3)
    shards[1].kill()                       # SIGKILL, workers included
    time.sleep(4)
    shards[1] = start(1)
    shards[1].wait_healthy(60)
    wait_all_final(lambda: bigquery_table_latest(bigquery_fake), SERIES, 60, lag_ms=12_000,
                   through_ms=now_ms() + 5_000)
    for shard in shards:
        assert shard.terminate() == 0

    owners = fetchers(sim)
    assert len(owners) == len(SERIES), owners
    assert all(len(tags) == 1 for tags in owners.values()), owners      # one shard per series
    assert len(set().union(*owners.values())) == 3                       # and every shard works
    # After the kill the restarted shard repaired from the store: no bar missing since the start.
    store = bigquery_table_latest(bigquery_fake)
    first = min(min(store[s]) for s in SERIES)
    end = now_ms() - 12_000
    for series in SERIES:
        expected = truth_bars(series, min(store[series]), end, now=end)
        assert min(store[series]) - first <= 120_000
        assert truth_diff({ts: v for ts, v in values_of(store[series]).items() if ts in expected}, expected) == {}

    # HISTORY fan-out over the three shards: each exits 0, together they cover the range once.
    sim.clear_requests()
    end_ms = floor_to(now_ms(), 3_600_000) - 3_600_000
    start_ms = end_ms - 90 * 60_000
    runs = [start(i, "--mode", "history", "--start", iso_arg(start_ms), "--end", iso_arg(end_ms))
            for i in range(3)]
    assert [run.wait(120) for run in runs] == [0, 0, 0]
    owners = fetchers(sim)
    assert len(owners) == len(SERIES) and all(len(tags) == 1 for tags in owners.values()), owners
    store = bigquery_table_latest(bigquery_fake)
    for series in SERIES:
        stored = {ts: v for ts, v in values_of(store[series]).items() if start_ms <= ts < end_ms}
        assert truth_diff(stored, truth_bars(series, start_ms, end_ms)) == {}, series
    completes = [run.events("history_complete")[0] for run in runs]
    assert sum(c["covered"] for c in completes) == len(SERIES) and all(c["failed"] == 0 for c in completes)
