"""SIGHUP end to end: the real CLI in LIVE mode reloads its config file.

A changed exchange restarts its worker, a new one starts, a removed one stops, the others keep
their process and their cycle; a bad file changes nothing and says where it is wrong;
settings the supervisor reads once are named and kept.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import yaml

from core.timefmt import parse_iso_utc
from tests.e2e_support import Collector, e2e_config, now_ms


def btc_1m() -> list[dict]:
    """A new list each time: a shared one would become a YAML anchor that edits alias."""
    return [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]


def edit_config(path: Path, change) -> None:
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def hup_and_wait(collector: Collector, event: str) -> dict:
    before = len(collector.events(event))
    collector.proc.send_signal(signal.SIGHUP)
    return collector.wait_for(lambda: collector.events(event)[before:], 10, event)[0]


def cycle_times(collector: Collector, exchange: str, since_ms: int = 0) -> list[int]:
    return [parse_iso_utc(l["ts"]) for l in collector.events("live_cycle_complete", exchange=exchange)
            if parse_iso_utc(l["ts"]) >= since_ms]


def test_sighup_restarts_changed_starts_new_stops_removed_and_leaves_the_rest(sim, tmp_path, collectors) -> None:
    config = e2e_config(tmp_path, sim, {"binance": btc_1m(), "okx": btc_1m(), "kraken": [
        {"symbol": "BTC/USD", "timeframes": ["1m"]}]}, settings={"update_interval_seconds": 1})
    edit_config(config, lambda c: c["exchanges"].pop("kraken"))     # kraken comes with the reload
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    pids = collector.worker_pids()
    kraken_ccxt = sim.ccxt_config("kraken")

    def change(c: dict) -> None:
        c["exchanges"]["binance"]["symbols"].append({"symbol": "ETH/USDT", "timeframes": ["1m"]})
        c["exchanges"]["kraken"] = {"ccxt": kraken_ccxt, "symbols": [{"symbol": "BTC/USD", "timeframes": ["1m"]}]}
    edit_config(config, change)
    reloaded_at = now_ms()
    reloaded = hup_and_wait(collector, "config_reloaded")
    assert (reloaded["added"], reloaded["restarted"], reloaded["untouched"]) == (["kraken"], ["binance"], ["okx"])
    collector.wait_for(lambda: {"binance", "okx", "kraken"} <= set(collector.worker_pids())
                       and collector.worker_pids()["binance"] != pids["binance"], 10, "binance restarted")
    collector.wait_healthy(30)
    assert collector.worker_pids()["okx"] == pids["okx"]
    collector.wait_for(lambda: [l for l in collector.events("live_cycle_complete", exchange="binance")
                                if parse_iso_utc(l["ts"]) > reloaded_at and l["rows"] >= 2], 15, "binance with ETH")
    okx = cycle_times(collector, "okx", reloaded_at - 3_000)
    assert max(b - a for a, b in zip(okx, okx[1:])) < 2_000, okx     # no cycle missed
    assert collector.events("worker_reloaded", worker="binance")[-1]["exit_code"] == 0   # gracefully

    # A bad file: logged with its key paths, nothing changes.
    edit_config(config, lambda c: (c["exchanges"].pop("kraken"),
                                   c["settings"].update(update_interval_seconds=-5, bogus=1)))
    rejected = hup_and_wait(collector, "config_reload_rejected")
    paths = {p["path"] for p in rejected["problems"]}
    assert {"settings.update_interval_seconds", "settings.bogus"} <= paths, rejected
    assert "settings.update_interval_seconds" in rejected["message"]
    time.sleep(1.5)
    assert set(collector.worker_pids()) == {"binance", "okx", "kraken"}

    # Removed exchange stops; a restart-only setting is named and kept; a shared setting
    # restarts every worker.
    pids = collector.worker_pids()
    def fix(c: dict) -> None:
        del c["settings"]["bogus"]
        c["settings"].update(update_interval_seconds=2, health_port=1)
    edit_config(config, fix)
    needs_restart = hup_and_wait(collector, "config_reload_needs_restart")
    assert needs_restart["keys"] == ["settings.health_port"]
    reloaded = collector.events("config_reloaded")[-1]
    assert reloaded["removed"] == ["kraken"] and sorted(reloaded["restarted"]) == ["binance", "okx"]
    assert reloaded["settings_changed"] == ["settings.update_interval_seconds"]
    collector.wait_for(lambda: collector.events("worker_retired", worker="kraken"), 10, "kraken stopped")
    collector.wait_for(lambda: set(collector.worker_pids()) == {"binance", "okx"}
                       and all(collector.worker_pids()[e] != pids[e] for e in ("binance", "okx")),
                       15, "both workers restarted")
    # Still served on the old port. Healthy again once the restarted workers' series are fresh:
    # at a 2 s interval a restart that takes a few seconds leaves them stale for a moment.
    collector.wait_healthy(30)
    assert collector.terminate() == 0
