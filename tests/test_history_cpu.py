"""The HISTORY hot path's shortcuts change nothing that is stored."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime

import pytest

from core.series import OhlcvRow
from core.timefmt import iso_utc
from worker.sinks.sqlite import SqliteSink


def reference_iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_iso_utc_is_exact_for_bar_times_and_arbitrary_milliseconds() -> None:
    rng = random.Random(11)
    bars = [1_700_000_040_000 + i * 60_000 for i in range(5_000)]
    anything = [rng.randrange(0, 4_102_444_800_000) for _ in range(5_000)]
    for ms in bars + anything + [0, 999, 86_399_999, 86_400_000]:
        assert iso_utc(ms) == reference_iso(ms), ms


def test_sqlite_sink_stores_plain_tuples_exactly_as_named_rows(tmp_path) -> None:
    rows = [OhlcvRow(1_700_000_040_000 + i * 60_000, "binance", "BTC/USDT", "1m", 1.0 + i, 2.0 + i,
                     0.5, 1.5, 10.0 * i, 1_800_000_000_123) for i in range(100)]
    named, plain = SqliteSink(tmp_path / "named.sqlite"), SqliteSink(tmp_path / "plain.sqlite")
    for sink, batch in ((named, rows), (plain, [tuple(r) for r in rows])):
        sink.ensure()
        assert sink.write(batch).written == 100
        sink.close()
    dump = "SELECT * FROM market_data_ohlcv ORDER BY timestamp"
    with sqlite3.connect(tmp_path / "named.sqlite") as a, sqlite3.connect(tmp_path / "plain.sqlite") as b:
        assert a.execute(dump).fetchall() == b.execute(dump).fetchall()


def test_a_failing_write_leaves_no_transaction_open(tmp_path) -> None:
    sink = SqliteSink(tmp_path / "md.sqlite")
    sink.ensure()
    row = OhlcvRow(1_700_000_040_000, "binance", "BTC/USDT", "1m", 1.0, 2.0, 0.5, 1.5, 10.0, 1_800_000_000_123)
    with pytest.raises(ValueError):  # the bar time will not format
        sink.write([row._replace(timestamp="not a time")])
    assert sink.write([row]).written == 1
    sink.close()
