"""AUDIT against the simulator: failure gaps are repairable, no-trade gaps are not."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from core.protocol import GapKind
from core.series import Candle
from core.timefmt import iso_utc, parse_iso_utc
from simulator import quiet_minutes, truth
from tests.e2e_support import Collector, write_config
from worker.audit import classify_gaps


def test_audit_classifies_gaps_and_repair_fills_the_repairable_ones(sim, tmp_path) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    start = end - timedelta(hours=24)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    quiet = quiet_minutes("binance", "BTC/USDT", start_ms, end_ms)
    assert quiet, "the simulator's price path has no-trade minutes in any day"
    config = write_config(tmp_path / "c.yaml", sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]},
                          settings={"health_port": 0})
    args = ("--start", start.strftime("%Y-%m-%dT%H:%M:%S"), "--end", end.strftime("%Y-%m-%dT%H:%M:%S"))

    def run(*extra: str) -> Collector:
        collector = Collector(config, *extra, *args)
        collector.wait(120)
        return collector

    assert run("--mode", "history").proc.returncode == 0
    db = sqlite3.connect(tmp_path / "md.sqlite")
    # lose the half hour around a no-trade minute: the exchange can serve all of it but that minute
    lost_from_ms = next(m for m in quiet if start_ms + 60 * 60_000 <= m < end_ms - 60 * 60_000) - 15 * 60_000
    lost_to_ms = lost_from_ms + 30 * 60_000
    lost_from, lost_to = iso_utc(lost_from_ms), iso_utc(lost_to_ms)
    deleted = db.execute("DELETE FROM market_data_ohlcv WHERE timestamp >= ? AND timestamp < ?",
                         (lost_from, lost_to)).rowcount
    db.commit()
    # a failure gap: the exchange still has these bars (all but the half hour's no-trade minutes,
    # fifteen of them when the fortnight's quiet block is the one picked)
    assert 0 < deleted == 30 - len([m for m in quiet if lost_from_ms <= m < lost_to_ms])

    audit = run("--mode", "audit")
    assert audit.proc.returncode == 1
    summary = audit.events("audit_summary")[0]
    repairable = [(g["start_ms"], g["end_ms"], g["exchange_bars"]) for g in summary["gaps"]
                  if g["kind"] == "repairable"]
    # one repairable gap per run of deleted bars; a no-trade minute inside the lost half hour is
    # a no_trades gap of its own and splits the run (the exchange has nothing to repair there)
    assert repairable == served_runs(set(quiet), lost_from_ms, lost_to_ms)
    assert sum(bars for *_, bars in repairable) == summary["repairable"] == deleted
    no_trades = [g for g in summary["gaps"] if g["kind"] == "no_trades"]
    assert sum(g["missing"] for g in no_trades) == len(quiet)

    repaired = run("--mode", "audit", "--repair")
    assert repaired.proc.returncode == 0
    assert repaired.events("audit_summary")[0]["repaired"] == deleted
    stored = {parse_iso_utc(ts): values for ts, *values in db.execute(
        "SELECT timestamp, open, high, low, close, volume FROM market_data_ohlcv ORDER BY timestamp")}
    expected = {c[0]: list(c[1:]) for c in truth("binance", "BTC/USDT", "1m", start_ms, end_ms)}
    assert {ts: list(v) for ts, v in stored.items()} == expected
    assert run("--mode", "audit").proc.returncode == 0  # nothing repairable left


def served_runs(quiet: set[int], start_ms: int, end_ms: int) -> list[tuple[int, int, int]]:
    """(start, end, bars) of each run of minutes in [start_ms, end_ms) the exchange has a bar for."""
    runs: list[tuple[int, int, int]] = []
    for minute in range(start_ms, end_ms, 60_000):
        if minute in quiet:
            continue
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + 60_000, runs[-1][2] + 1)
        else:
            runs.append((minute, minute + 60_000, 1))
    return runs


def test_a_quiet_bar_next_to_a_lost_run_is_its_own_no_trades_gap() -> None:
    # 09:59 had no trades (the exchange has no bar); 10:00..10:02 were lost by us. One merged
    # gap would paint the 09:00 hour repairable although nothing in it can be repaired.
    minute, t0 = 60_000, 1_700_000_000_000 // 3_600_000 * 3_600_000
    served = {t0 + i * minute: Candle(t0 + i * minute, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(3)}
    gaps = classify_gaps([t0 - minute, t0, t0 + minute, t0 + 2 * minute], "1m", served.__contains__, [])
    assert [(g.start_ms, g.end_ms, g.missing, g.kind, g.exchange_bars) for g in gaps] == [
        (t0 - minute, t0, 1, GapKind.NO_TRADES, 0), (t0, t0 + 3 * minute, 3, GapKind.REPAIRABLE, 3)]
