"""``--mode export`` end to end: the real CLI writes hive-partitioned files from SQLite and from
BigQuery (the real client against the fake); DuckDB and pyarrow read back exactly the store's
latest view in the range; a rerun replaces files instead of adding rows."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from core.series import OhlcvRow
from core.timefmt import epoch_ms
from tests.e2e_support import (
    BQ_DATASET,
    BQ_PROJECT,
    ROOT,
    Collector,
    Store,
    StoredBar,
    bigquery_client,
    bigquery_env,
    bigquery_latest_view,
    bigquery_storage,
    iso_arg,
    sqlite_latest,
)

duckdb = pytest.importorskip("duckdb", reason="duckdb (requirements-dev.txt) reads the exported files back")
pads = pytest.importorskip("pyarrow.dataset", reason="pyarrow reads the exported files back")

DAY = 86_400_000
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
START, END = T0 + DAY // 2, T0 + 2 * DAY                 # noon of day one to the end of day two
SERIES = [("binance", "BTC/USDT", "1m", 60_000), ("binance", "ETH/USDT:USDT", "1h", 3_600_000),
          ("kraken", "BTC/USD", "15m", 900_000)]


def rows(ingested_at: int, *, bump: float = 0.0, only: int | None = None) -> list[OhlcvRow]:
    """Bars from the first day's midnight to 06:00 of day three (outside the range on both sides)."""
    out = []
    for n, (exchange, symbol, timeframe, step) in enumerate(SERIES):
        if only is not None and n != only:
            continue
        for ts in range(T0, T0 + 2 * DAY + DAY // 4, step):
            price = 100.0 + n + (ts - T0) / step % 97 + bump
            out.append(OhlcvRow(ts, exchange, symbol, timeframe, price, price + 1, price - 1, price + 0.5,
                                float(ts % 1000 + 1), ingested_at))
    return out


def config_for(tmp_path: Path, storage: dict) -> Path:
    path = tmp_path / "export.yaml"
    path.write_text(yaml.safe_dump({
        "settings": {"health_port": 0, "state_dir": str(tmp_path / "state")},
        "storage": storage,
        "exchanges": {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]}}))
    return path


def export(config: Path, out: Path, *extra: str, env: dict | None = None, start: int = START,
           end: int = END) -> Collector:
    collector = Collector(config, "--mode", "export", "--start", iso_arg(start), "--end", iso_arg(end),
                          "--out", str(out), *extra, env=env)
    assert collector.wait(120) == 0, collector.stderr()
    return collector


def in_range(store: Store, start: int = START, end: int = END) -> Store:
    clipped = {key: {ts: bar for ts, bar in bars.items() if start <= ts < end} for key, bars in store.items()}
    return {key: bars for key, bars in clipped.items() if bars}


def read_back(out: Path, fmt: str = "parquet") -> tuple[Store, int]:
    """The exported files as DuckDB reads them (file columns, not the path's), and the row count."""
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    found = duckdb.sql(f"SELECT exchange, symbol, timeframe, timestamp, open, high, low, close, volume, "
                       f"ingested_at FROM {reader}('{out}/ohlcv/**/*.{fmt}', hive_partitioning=false)").fetchall()
    store: Store = {}
    for exchange, symbol, timeframe, ts, o, h, l, c, v, ingested in found:
        assert ts.utcoffset().total_seconds() == 0 and ingested.utcoffset().total_seconds() == 0
        bars = store.setdefault((exchange, symbol, timeframe), {})
        bars[epoch_ms(ts)] = StoredBar((o, h, l, c, v), epoch_ms(ingested))
    return store, len(found)


def sqlite_store(tmp_path: Path, batches: list[list[OhlcvRow]]) -> Path:
    from worker.sinks.sqlite import SqliteSink

    sink = SqliteSink(tmp_path / "md.sqlite")
    sink.ensure()
    for batch in batches:
        sink.write(batch)
    sink.close()
    return tmp_path / "md.sqlite"


def test_export_from_sqlite_equals_the_latest_view_and_a_rerun_replaces_files(tmp_path) -> None:
    db = sqlite_store(tmp_path, [rows(T0 + 3 * DAY)])
    config = config_for(tmp_path, {"backend": "sqlite", "sqlite": {"path": str(db)}})
    out = tmp_path / "out"
    run = export(config, out)

    expected = in_range(sqlite_latest(db))
    assert read_back(out) == (expected, sum(map(len, expected.values())))
    day_dir = out / "ohlcv/exchange=binance/symbol=ETH-USDT_USDT/timeframe=1h/date=2024-01-01"
    assert sorted(p.name for p in day_dir.iterdir()) == ["part-0.parquet"]
    # hive-aware readers get the partition columns from the path, and prune on them
    hive = pads.dataset(out / "ohlcv", format="parquet", partitioning="hive").to_table(
        filter=pads.field("date") == "2024-01-02")
    assert set(hive.column("symbol").to_pylist()) == {"BTC-USDT", "ETH-USDT_USDT", "BTC-USD"}
    plain = pads.dataset(out / "ohlcv", format="parquet").to_table()
    assert str(plain.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert plain.num_rows == sum(map(len, expected.values()))
    done = run.events("export_complete")[0]
    assert done["rows"] == plain.num_rows and done["files"] == 3 * 2

    # a changed row and a rerun: the file is replaced, the row changed, none added
    sqlite_store(tmp_path, [rows(T0 + 4 * DAY, bump=0.25, only=1)])
    export(config, out)
    changed = in_range(sqlite_latest(db))
    assert changed != expected
    assert read_back(out) == (changed, sum(map(len, changed.values())))

    # a rerun over part of a day keeps that day's rows outside the smaller range
    export(config, out, start=START + DAY // 2, end=START + DAY)
    assert read_back(out) == (changed, sum(map(len, changed.values())))
    assert not list(out.glob(".export-staging-*"))


def test_export_to_csv_round_trips_and_shows_progress_on_a_terminal(tmp_path) -> None:
    db = sqlite_store(tmp_path, [rows(T0 + 3 * DAY)])
    config = config_for(tmp_path, {"backend": "sqlite", "sqlite": {"path": str(db)}})
    out = tmp_path / "csv"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a 100-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "--config", str(config), "--mode", "export",
                             "--start", iso_arg(START), "--end", iso_arg(END), "--out", str(out),
                             "--format", "csv", "--exchange", "binance"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:              # the pty closes when the last writer exits
            break
        if not chunk:
            break
        terminal += chunk
    os.close(master)
    assert proc.wait(60) == 0, terminal.decode(errors="replace")[-2000:]
    assert b"export ohlcv" in terminal and b"100%" in terminal

    expected = {key: bars for key, bars in in_range(sqlite_latest(db)).items() if key[0] == "binance"}
    assert read_back(out, "csv") == (expected, sum(map(len, expected.values())))
    assert not (out / "ohlcv/exchange=kraken").exists()


def test_export_from_bigquery_reads_the_latest_view(tmp_path, bigquery_fake) -> None:
    from worker.sinks.bigquery import BigQuerySink

    sink = BigQuerySink(project=BQ_PROJECT, dataset=BQ_DATASET, client_factory=lambda: bigquery_client(bigquery_fake))
    sink.ensure()
    sink.write(rows(T0 + 3 * DAY))
    sink.write(rows(T0 + 4 * DAY, bump=0.5, only=2))   # a second version of one series' bars
    sink.close()
    config = config_for(tmp_path, bigquery_storage())
    out = tmp_path / "out"
    export(config, out, env=bigquery_env(bigquery_fake))

    latest, repeated = bigquery_latest_view(bigquery_fake)
    assert not repeated
    expected = in_range(latest)
    assert expected[("kraken", "BTC/USD", "15m")][START].ingested_at == T0 + 4 * DAY
    assert read_back(out) == (expected, sum(map(len, expected.values())))


@pytest.mark.parametrize("args, message", [
    (("--start", "2024-01-02", "--end", "2024-01-03"), "--out"),
    (("--start", "2024-01-03", "--end", "2024-01-02", "--out", "x"), "--start must be before --end"),
    (("--start", "2024-01-01", "--out", "x", "--format", "xlsx"), "--format"),
])
def test_export_bad_usage_exits_2(tmp_path, args, message) -> None:
    config = config_for(tmp_path, {"backend": "sqlite", "sqlite": {"path": str(tmp_path / "md.sqlite")}})
    proc = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(config), "--mode", "export", *args],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and message in proc.stderr
