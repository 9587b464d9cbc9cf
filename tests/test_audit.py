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
    lost_from, lost_to = iso_utc(start_ms + 600 * 60_000), iso_utc(start_ms + 630 * 60_000)
    deleted = db.execute("DELETE FROM market_data_ohlcv WHERE timestamp >= ? AND timestamp < ?",
                         (lost_from, lost_to)).rowcount
    db.commit()
    assert deleted > 25  # a failure gap: the exchange still has these bars

    audit = run("--mode", "audit")
    assert audit.proc.returncode == 1
    summary = audit.events("audit_summary")[0]
    repairable = [g for g in summary["gaps"] if g["kind"] == "repairable"]
    # one gap (a no-trade minute next to it would merely widen it), holding every deleted bar
    assert len(repairable) == 1 and repairable[0]["start"] <= lost_from and lost_to <= repairable[0]["end"]
    assert repairable[0]["exchange_bars"] == deleted
    assert summary["repairable"] == deleted
    no_trades = [g for g in summary["gaps"] if g["kind"] == "no_trades"]
    quiet_outside = [m for m in quiet if not (lost_from <= iso_utc(m) < lost_to)]
    assert sum(g["missing"] for g in no_trades) == len(quiet_outside)

    repaired = run("--mode", "audit", "--repair")
    assert repaired.proc.returncode == 0
    assert repaired.events("audit_summary")[0]["repaired"] == deleted
    stored = {parse_iso_utc(ts): values for ts, *values in db.execute(
        "SELECT timestamp, open, high, low, close, volume FROM market_data_ohlcv ORDER BY timestamp")}
    expected = {c[0]: list(c[1:]) for c in truth("binance", "BTC/USDT", "1m", start_ms, end_ms)}
    assert {ts: list(v) for ts, v in stored.items()} == expected
    assert run("--mode", "audit").proc.returncode == 0  # nothing repairable left


def test_a_quiet_bar_next_to_a_lost_run_is_its_own_no_trades_gap() -> None:
    # 09:59 had no trades (the exchange has no bar); 10:00..10:02 were lost by us. One merged
    # gap would paint the 09:00 hour repairable although nothing in it can be repaired.
    minute, t0 = 60_000, 1_700_000_000_000 // 3_600_000 * 3_600_000
    served = {t0 + i * minute: Candle(t0 + i * minute, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(3)}
    gaps = classify_gaps([t0 - minute, t0, t0 + minute, t0 + 2 * minute], "1m", served.__contains__, [])
    assert [(g.start_ms, g.end_ms, g.missing, g.kind, g.exchange_bars) for g in gaps] == [
        (t0 - minute, t0, 1, GapKind.NO_TRADES, 0), (t0, t0 + 3 * minute, 3, GapKind.REPAIRABLE, 3)]
