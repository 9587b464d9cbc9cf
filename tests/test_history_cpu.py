"""The HISTORY hot path's shortcuts change nothing that is stored."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime

import pytest

from core.row_batch import CandleColumns, RowBatch
from core.series import Candle, FundingRow, SeriesKey, to_rows
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


def mixed_batch() -> tuple[RowBatch, list]:
    """Candle pages, a funding row and loose candle rows; the last page rewrites a bar of the first."""
    btc, eth = SeriesKey("binance", "BTC/USDT", "1m"), SeriesKey("binance", "ETH/USDT", "1m")
    page = [Candle(1_700_000_040_000 + i * 60_000, 1.0 + i, 2.0 + i, 0.5, 1.5, 10.0 * i) for i in range(100)]
    funding = [FundingRow(1_700_000_000_000, "binance", "BTC/USDT:USDT", 0.0001, 1_800_000_000_000)]
    loose = to_rows(eth, page[:10], 1_800_000_000_001)
    rewrite = [page[5]._replace(close=1.75)]
    batch = RowBatch()
    batch.add_candles(btc, page, 1_800_000_000_123)
    batch.add_rows(funding + loose)
    batch.add_candles(btc, rewrite, 1_800_000_000_456)
    return batch, list(batch)


DUMPS = ("SELECT * FROM market_data_ohlcv ORDER BY symbol, timestamp",
         "SELECT * FROM market_data_funding_rates ORDER BY timestamp")


def dump(path) -> list:
    with sqlite3.connect(path) as conn:
        return [conn.execute(query).fetchall() for query in DUMPS]


def test_sqlite_sink_stores_a_batch_of_columns_exactly_as_its_rows(tmp_path) -> None:
    batch, rows = mixed_batch()
    for name, written in (("columns", batch), ("rows", rows)):
        sink = SqliteSink(tmp_path / f"{name}.sqlite")
        sink.ensure()
        assert sink.write(written).written == 112
        sink.close()
    stored = dump(tmp_path / "columns.sqlite")
    assert stored == dump(tmp_path / "rows.sqlite")
    assert len(stored[0]) == 110 and len(stored[1]) == 1
    assert [r for r in stored[0] if r[0] == iso_utc(1_700_000_340_000) and r[2] == "BTC/USDT"][0][7] == 1.75


@pytest.mark.parametrize("as_columns", [False, True])
def test_a_failing_write_leaves_no_transaction_open(tmp_path, as_columns: bool) -> None:
    sink = SqliteSink(tmp_path / "md.sqlite")
    sink.ensure()
    btc = SeriesKey("binance", "BTC/USDT", "1m")
    broken, fine = Candle("not a time", 1.0, 2.0, 0.5, 1.5, 10.0), Candle(1_700_000_040_000, 1.0, 2.0, 0.5, 1.5, 10.0)
    if as_columns:
        batches = [RowBatch([CandleColumns.of(btc, [candle], 1_800_000_000_123)]) for candle in (broken, fine)]
    else:
        batches = [to_rows(btc, [candle], 1_800_000_000_123) for candle in (broken, fine)]
    with pytest.raises(ValueError):  # the bar time will not format
        sink.write(batches[0])
    assert sink.write(batches[1]).written == 1
    sink.close()


def test_pages_written_in_blocks_keep_the_latest_version_of_a_bar(tmp_path) -> None:
    """Pages go to SQLite in multi-row statements plus a one-row tail: a bar that a later page
    rewrites, in its blocks or its tail, ends as the later version, as row by row."""
    btc = SeriesKey("binance", "BTC/USDT", "1m")
    bars = [Candle(1_700_000_040_000 + i * 60_000, 1.0 + i, 2.0 + i, 0.5, 1.5, 10.0 * i) for i in range(257)]
    batch = RowBatch()
    batch.add_candles(btc, bars[:250], 1_800_000_000_000)                                  # 2 blocks + 50
    batch.add_candles(btc, [bar._replace(close=1.25) for bar in bars[150:]], 1_800_000_000_999)  # 1 block + 7
    rows = list(batch)
    for name, written in (("blocks", batch), ("rows", rows)):
        sink = SqliteSink(tmp_path / f"{name}.sqlite")
        sink.ensure()
        assert sink.write(written).written == 357
        sink.close()
    stored = dump(tmp_path / "blocks.sqlite")[0]
    assert stored == dump(tmp_path / "rows.sqlite")[0] and len(stored) == 257
    assert [r[7] for r in stored] == [1.5] * 150 + [1.25] * 107
    assert {r[9] for r in stored[150:]} == {iso_utc(1_800_000_000_999)}
