"""--mode plan and --shard through the real CLI: every series owned by exactly one shard."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e_support import ROOT
from tests.shard_support import plan_lines, universe_config

BODIES = {
    "binance": {"universe": {"quote": ["USDT"], "top": 2, "timeframes": ["1m"]}},
    "okx": {"universe": {"quote": ["USDT"], "exclude": ["SOL/*"], "timeframes": ["1m", "5m"]}},
    "kraken": {"symbols": [{"symbol": "BTC/USD", "timeframes": ["1m"]},
                           {"symbol": "ETH/USD", "timeframes": ["1m", "1h"]}]},
}


def run(config, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "supervisor", "--config", str(config), "--mode", "plan",
                             *args], cwd=ROOT, env={"PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_plan_splits_the_universe_over_shards(sim, tmp_path) -> None:
    for symbol, volume in (("SOL/USDT", 3e9), ("BTC/USDT", 2e9), ("ETH/USDT", 1e9)):
        sim.set_quote_volume("binance", symbol, volume)
    config = universe_config(tmp_path, sim, BODIES, settings={"shard_by": "series"})
    procs = {"all": run(config)} | {i: run(config, "--shard", f"{i}/3") for i in range(3)}
    procs["env"] = run(config, "--shard", "2/3", env={"SHARD": "not-a-shard"})   # the flag wins
    procs["idle"] = run(config, "--shard", "40/41")
    out = {name: proc.communicate(timeout=90) for name, proc in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), {n: o[1][-1500:] for n, o in out.items()}
    everything = plan_lines(out["all"][0])
    key = lambda line: (line["exchange"], line["symbol"], line["dataset"], line["timeframe"])  # noqa: E731
    assert sorted(map(key, everything)) == sorted([
        ("binance", "BTC/USDT", "ohlcv", "1m"), ("binance", "SOL/USDT", "ohlcv", "1m"),
        ("okx", "BTC/USDT", "ohlcv", "1m"), ("okx", "BTC/USDT", "ohlcv", "5m"),
        ("okx", "ETH/USDT", "ohlcv", "1m"), ("okx", "ETH/USDT", "ohlcv", "5m"),
        ("kraken", "BTC/USD", "ohlcv", "1m"), ("kraken", "ETH/USD", "ohlcv", "1m"),
        ("kraken", "ETH/USD", "ohlcv", "1h")])
    shards = [plan_lines(out[i][0]) for i in range(3)]
    assert all(line["shard"] == i for i, lines in enumerate(shards) for line in lines)
    owned = [key(line) for lines in shards for line in lines]
    assert sorted(owned) == sorted(map(key, everything))          # each series exactly once
    assert len({line["symbol"] for lines in shards for line in lines}) >= 2
    assert plan_lines(out["env"][0]) == shards[2]
    assert out["idle"][0].strip() == "" and "shard_idle" in out["idle"][1]
    assert '"universe_selected"' in out["all"][1]                  # logs go to stderr in plan mode


def test_bad_shard_exits_2(sim, tmp_path) -> None:
    config = universe_config(tmp_path, sim, BODIES)
    for args, env in ((["--shard", "3/3"], {}), (["--shard", "1of3"], {}), ([], {"SHARD": "-1/2"}),
                      (["--shard", "0/0"], {})):
        stdout, stderr = run(config, *args, env=env).communicate(timeout=30)
        assert "error:" in stderr and ("SHARD" in stderr or "--shard" in stderr), stderr
    proc = run(config, "--shard", "3/3")
    proc.communicate(timeout=30)
    assert proc.returncode == 2


def test_plan_names_the_dataset_of_each_series(sim, tmp_path) -> None:
    config = universe_config(tmp_path, sim, {"binanceusdm": {"symbols": [
        {"symbol": "BTC/USDT:USDT", "timeframes": ["1h"], "funding_rates": True, "open_interest": ["5m"]}]}})
    proc = run(config)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-1500:]
    assert sorted((line["dataset"], line["timeframe"]) for line in plan_lines(stdout)) == [
        ("funding_rates", ""), ("ohlcv", "1h"), ("open_interest", "5m")]
