"""A RowBatch reads as exactly the rows its pages stand for, in the order they were added."""

from __future__ import annotations

import pickle

from core.row_batch import CandleColumns, RowBatch
from core.series import Candle, FundingRow, OhlcvRow, SeriesKey, to_rows

BTC = SeriesKey("binance", "BTC/USDT", "1m")
ETH = SeriesKey("binance", "ETH/USDT", "5m")


def candles(start: int, n: int, step: int = 60_000) -> list[Candle]:
    return [Candle(start + i * step, 1.0 + i, 2.0 + i, 0.5, 1.5 + i / 3, 10.0 * i) for i in range(n)]


def test_a_page_of_columns_reads_as_the_rows_to_rows_gives() -> None:
    page = candles(1_700_000_040_000, 1000)
    columns = CandleColumns.of(BTC, page, 1_800_000_000_123)
    assert columns.size == 1000
    rows = columns.rows()
    assert rows == to_rows(BTC, page, 1_800_000_000_123)
    assert {type(r) for r in rows} == {OhlcvRow}
    assert pickle.loads(pickle.dumps(columns)) == columns


def test_a_batch_keeps_the_order_of_pages_and_rows_and_indexes_like_a_list() -> None:
    funding = [FundingRow(1_700_000_000_000, "binance", "BTC/USDT:USDT", 0.0001, 5)]
    first, second = candles(1_700_000_040_000, 3), candles(1_700_000_100_000, 2, 300_000)
    batch = RowBatch()
    batch.add_candles(BTC, first, 7)
    batch.add_rows(funding)
    batch.add_candles(ETH, second, 8)
    batch.add_candles(ETH, [], 9)      # an empty page adds nothing
    batch.add_rows([])
    expected = to_rows(BTC, first, 7) + funding + to_rows(ETH, second, 8)
    assert len(batch) == 6 and len(batch.parts) == 3
    assert list(batch) == expected
    assert batch[0] == expected[0] and batch[-1] == expected[-1] and batch[2:4] == expected[2:4]
    later = RowBatch()
    later.add_candles(BTC, candles(1_800_000_000_000, 2), 9)
    joined = later + batch
    assert list(joined) == to_rows(BTC, candles(1_800_000_000_000, 2), 9) + expected
    assert len(joined) == 8 and list(batch) == expected      # the parts are shared, not moved


def test_indexing_sees_what_was_added_after_the_last_index() -> None:
    batch = RowBatch()
    batch.add_candles(BTC, candles(1_700_000_040_000, 2), 7)
    assert batch[-1].timestamp == 1_700_000_100_000
    batch.add_candles(BTC, candles(1_700_000_160_000, 1), 7)
    assert batch[-1].timestamp == 1_700_000_160_000 and not RowBatch()
