"""The supervisor with real worker processes, the real ccxt and the exchange simulator."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from tests.e2e_support import ROOT, Collector, write_config
from tests.fakes.loki_fake import LokiFake


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


BTC = [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]


def test_kill_9_worker_is_back_within_2s_and_the_other_never_misses_a_cycle(sim, tmp_path, collectors) -> None:
    loki = LokiFake(username="u", password="loki-secret-value").start()
    try:
        config = write_config(tmp_path / "c.yaml", sim, {"binance": BTC, "okx": BTC})
        collector = Collector(config, env={"LOKI_URL": loki.url, "LOKI_USERNAME": "u",
                                           "LOKI_PASSWORD": "loki-secret-value"})
        collectors.append(collector)
        collector.wait_healthy(60)
        victim = collector.worker_pids()["binance"]
        time.sleep(2)
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)

        def replaced():
            answer = collector.health()
            worker = answer[1]["workers"]["binance"] if answer else None
            return worker if worker and worker["pid"] != victim and worker["alive"] else None
        worker = collector.wait_for(replaced, 10, "binance worker restarted")
        back_after = time.time() - killed_at
        assert back_after <= 2.0, back_after
        assert worker["restarts"] == 1
        time.sleep(3)
        assert collector.terminate() == 0

        okx_cycles = [parse_ts(l["ts"]) for l in collector.events("live_cycle_complete", exchange="okx")]
        around_kill = [t for t in okx_cycles if killed_at - 3 <= t <= killed_at + 4]
        gaps = [b - a for a, b in zip(around_kill, around_kill[1:])]
        assert len(around_kill) >= 6 and max(gaps) < 1.6, gaps  # a 1 s interval, never skipped
        spawned = collector.events("worker_spawned", worker="binance")
        assert len(spawned) == 2
        # Loki got the same story, batched and labelled
        entries = loki.entries()
        assert entries and loki.pushes < len(entries)
        assert {tuple(sorted(labels)) for labels, _, _ in entries} == {
            ("environment", "exchange", "level", "service_name")}
        assert {labels["exchange"] for labels, _, _ in entries} >= {"binance", "okx", "supervisor"}
        assert not any("loki-secret-value" in line for _, _, line in entries)
    finally:
        loki.stop()
    assert "loki-secret-value" not in collector.stdout_path.read_text()


def test_a_worker_crashing_on_start_is_restarted_with_growing_delays(sim, tmp_path, collectors) -> None:
    config = write_config(tmp_path / "c.yaml", sim, {"binance": BTC, "okx": BTC})
    text = config.read_text().replace(f"{sim.base_url}/binance/api/v3", "not-a-url", 1)
    config.write_text(text)
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_for(lambda: len(collector.events("worker_spawned", worker="binance")) >= 4, 30,
                       "three restarts")
    assert collector.terminate() == 0
    exits = [parse_ts(l["ts"]) for l in collector.events("worker_exited", worker="binance")]
    spawns = [parse_ts(l["ts"]) for l in collector.events("worker_spawned", worker="binance")]
    waits = [spawn - exit_ for exit_, spawn in zip(exits, spawns[1:])]
    for wait, backoff in zip(waits, (1, 2, 4)):
        assert backoff - 0.05 <= wait <= backoff + 1.0, waits
    delays = [l["restart_in_s"] for l in collector.events("worker_exited", worker="binance")
              if "restart_in_s" in l]
    assert delays[:3] == [1, 2, 4]
    assert collector.events("live_cycle_complete", exchange="okx")  # the other one collected


def test_sigterm_exits_0_within_the_grace_period_and_leaves_no_process(sim, tmp_path, collectors) -> None:
    config = write_config(tmp_path / "c.yaml", sim, {"binance": BTC, "okx": BTC})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    children = psutil.Process(collector.pid).children(recursive=True)
    assert len(children) >= 2
    started = time.monotonic()
    assert collector.terminate(timeout=12) == 0
    assert time.monotonic() - started < 8 + 1
    gone, alive = psutil.wait_procs(children, timeout=3)
    assert alive == []
    assert collector.events("worker_stopped", exchange="binance")
    assert collector.events("supervisor_exit")[-1]["exit_code"] == 0


def test_entrypoint_passes_sigterm_to_python(sim, tmp_path, collectors) -> None:
    config = write_config(tmp_path / "c.yaml", sim, {"okx": BTC})
    collector = Collector(config, command=["sh", str(ROOT / "entrypoint.sh")])
    collectors.append(collector)
    collector.wait_healthy(60)
    cmdline = psutil.Process(collector.pid).cmdline()
    assert "supervisor" in cmdline and "sh" not in Path(cmdline[0]).name  # exec replaced the shell
    assert collector.terminate(timeout=12) == 0


def history_window(minutes_ago: int, length_min: int) -> tuple[str, str]:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    start = end - timedelta(minutes=length_min)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), end.strftime("%Y-%m-%dT%H:%M:%S")


def test_history_runs_exchanges_concurrently_and_exits_0_when_covered(sim, tmp_path, collectors) -> None:
    # Balanced on purpose: binance needs few slow requests, okx many fast ones (100 bars a page).
    sim.set_latency(2.0, exchange="binance")
    sim.set_latency(0.25, exchange="okx")
    start, end = history_window(10, 3000)
    symbols = [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]
    config = write_config(tmp_path / "c.yaml", sim, {"binance": symbols, "okx": symbols},
                          settings={"history_page_limit": 1000, "health_port": 0})
    collector = Collector(config, "--mode", "history", "--start", start, "--end", end)
    collectors.append(collector)
    assert collector.wait(120) == 0, collector.stderr()
    spans = {}
    for name in ("binance", "okx"):
        began = parse_ts(collector.events("worker_spawned", worker=name)[0]["ts"])
        ended = parse_ts(collector.events("worker_exit", exchange=name)[0]["ts"])
        spans[name] = (began, ended)
    wall = max(e for _, e in spans.values()) - min(b for b, _ in spans.values())
    slowest = max(e - b for b, e in spans.values())
    total = sum(e - b for b, e in spans.values())
    assert wall <= slowest * 1.2 + 0.5 and wall < total * 0.8, (wall, spans)
    conn = sqlite3.connect(tmp_path / "md.sqlite")
    counts = dict(conn.execute("SELECT exchange, COUNT(*) FROM market_data_ohlcv GROUP BY exchange"))
    summary = {l["exchange"]: l for l in collector.events("history_summary")}
    assert summary["binance"]["status"] == "complete" and summary["okx"]["status"] == "complete"
    assert counts["binance"] == summary["binance"]["rows"] > 2900
    assert counts["okx"] == summary["okx"]["rows"] > 2900


def test_history_exits_1_with_a_summary_when_a_series_is_not_covered(sim, tmp_path, collectors) -> None:
    start, end = history_window(5, 30)
    config = write_config(tmp_path / "c.yaml", sim, {
        "binance": BTC, "okx": [{"symbol": "BTC/USDT", "timeframes": ["1m"]},
                                {"symbol": "NOPE/USDT", "timeframes": ["1m"]}]},
        settings={"health_port": 0})
    collector = Collector(config, "--mode", "history", "--start", start, "--end", end)
    collectors.append(collector)
    assert collector.wait(60) == 1
    summary = {(l["exchange"], l["symbol"]): l for l in collector.events("history_summary")}
    assert summary[("okx", "NOPE/USDT")]["status"] == "skipped"
    assert "does not list symbol" in summary[("okx", "NOPE/USDT")]["reason"]
    assert summary[("binance", "BTC/USDT")]["status"] == "complete"
    assert collector.events("history_complete")[-1]["failed"] == 1


@pytest.mark.parametrize("fault", ["dead", "slow"])
def test_a_dead_or_slow_loki_never_delays_collection_or_stdout(sim, tmp_path, collectors, fault) -> None:
    loki = LokiFake().start()
    loki.set_fault(fault, duration=600, delay=10.0)
    try:
        config = write_config(tmp_path / "c.yaml", sim, {"binance": BTC, "okx": BTC})
        collector = Collector(config, env={"LOKI_URL": loki.url})
        collectors.append(collector)
        collector.wait_healthy(60)
        time.sleep(8)
        stop_started = time.monotonic()
        assert collector.terminate(timeout=20) == 0
        assert time.monotonic() - stop_started < 8 + 4  # grace period plus a bounded Loki flush
        for exchange in ("binance", "okx"):
            cycles = [parse_ts(l["ts"]) for l in collector.events("live_cycle_complete", exchange=exchange)]
            gaps = [b - a for a, b in zip(cycles, cycles[1:])]
            assert len(cycles) >= 7 and max(gaps) < 1.6, (exchange, gaps)
    finally:
        loki.stop()
