"""Validation of candles and the timeframe grid."""

from __future__ import annotations

import math
import random

import pytest

from core.timeframes import bar_start, bars_between, epoch_grid_ms, is_on_grid, next_bar_start, timeframe_ms
from worker.candles import _check_slowly, _sane_candle, parse_candles

T0 = 1_700_000_040_000  # on the 1m grid
MINUTE = 60_000


def good(ts: int = T0) -> list:
    return [ts, 10.0, 12.0, 9.0, 11.0, 5.0]


@pytest.mark.parametrize("raw, reason", [
    ([T0, None, 12, 9, 11, 5], "open is not a finite number"),
    ([T0, 10, 12, 9, 11, None], "volume is not a finite number"),
    ([T0, 10, 12, 9, 11, -1], "volume is negative"),
    ([T0, -10, 12, 9, 11, 1], "open is negative"),
    ([T0, 10, 12, 9, math.nan, 1], "close is not a finite number"),
    ([T0, 10, math.inf, 9, 11, 1], "high is not a finite number"),
    ([T0, 10, "abc", 9, 11, 1], "high is not a finite number"),
    ([T0, 10, 10**400, 9, 11, 1], "high is not a finite number"),
    ([T0, 10, 10.5, 9, 11, 1], "high 10.5 is below"),
    ([T0, 10, 12, 10.5, 11, 1], "low 10.5 is above"),
    ([T0, 10, 8, 9, 9, 1], "high 8.0 is below"),
    ([T0 + 1234, 10, 12, 9, 11, 1], "not on the 1m grid"),
    ([None, 10, 12, 9, 11, 1], "bad timestamp"),
    ([T0, 10, 12, 9], "malformed"),
    ("garbage", "malformed"),
    (None, "malformed"),
])
def test_each_bad_candle_is_rejected_with_its_reason_and_the_rest_kept(raw, reason) -> None:
    batch = parse_candles([good(T0 - MINUTE), raw, good(T0 + MINUTE)], "1m")
    assert [c.timestamp for c in batch.candles] == [T0 - MINUTE, T0 + MINUTE]
    assert len(batch.rejected) == 1
    assert reason in batch.rejected[0].reason


def test_duplicates_are_rejected_and_order_is_restored() -> None:
    batch = parse_candles([good(T0 + MINUTE), good(T0), good(T0)], "1m")
    assert [c.timestamp for c in batch.candles] == [T0, T0 + MINUTE]
    assert [r.reason for r in batch.rejected] == [f"duplicate timestamp {T0}"]


def test_a_repeat_after_the_order_broke_is_still_caught() -> None:
    batch = parse_candles([good(T0 + MINUTE), good(T0), good(T0 + 2 * MINUTE), good(T0 + 2 * MINUTE)], "1m")
    assert [c.timestamp for c in batch.candles] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert [r.reason for r in batch.rejected] == [f"duplicate timestamp {T0 + 2 * MINUTE}"]


@pytest.mark.parametrize("timeframe", ["1m", "4h", "1w", "1M"])
def test_the_fast_check_agrees_with_the_slow_one(timeframe: str) -> None:
    """ccxt's usual answer takes a fast path; every verdict must match the full checks'."""
    rng = random.Random(7)
    monday = 1_704_067_200_000  # on every grid above
    for _ in range(5_000):
        ts = monday + rng.choice([0, MINUTE, 4 * 3_600_000, 7 * 86_400_000, 1234, -monday - 1])
        values = [rng.choice([0.0, 1.0, 2.0, 3.0, -1.0, math.nan, math.inf]) for _ in range(5)]
        raw = [ts, *values]
        slow = _check_slowly(raw, timeframe)
        fast = _sane_candle(raw, epoch_grid_ms(timeframe))
        if fast is not None:
            assert fast == slow and type(fast) is type(slow), raw
        batch = parse_candles([raw], timeframe)
        assert batch.candles == ([] if isinstance(slow, str) else [slow]), raw
        assert [r.reason for r in batch.rejected] == ([slow] if isinstance(slow, str) else []), raw


def test_numeric_strings_parse_and_none_batch_is_empty() -> None:
    batch = parse_candles([[T0, "10", "12", "9", "11", "0"]], "1m")
    assert batch.candles[0].open == 10.0 and batch.candles[0].volume == 0.0
    assert parse_candles(None, "1m").candles == []


def test_grid_for_each_unit() -> None:
    assert timeframe_ms("4h") == 4 * 3_600_000
    assert bar_start(T0 + 59_999, "1m") == T0
    assert next_bar_start(T0, "1m") == T0 + MINUTE
    # weekly bars open on Mondays: 2024-01-01 was a Monday
    monday = 1_704_067_200_000
    assert bar_start(monday + 3 * 86_400_000, "1w") == monday
    # monthly bars open on the first of the month, whatever the month's length
    feb1, mar1 = 1_706_745_600_000, 1_709_251_200_000
    assert bar_start(feb1 + 10 * 86_400_000, "1M") == feb1
    assert next_bar_start(feb1, "1M") == mar1
    assert is_on_grid(mar1, "1M") and not is_on_grid(mar1 + 86_400_000, "1M")
    assert bars_between(feb1, mar1, "1d") == 29
    assert bars_between(feb1 + 1, mar1, "1d") == 28
    assert bars_between(feb1, mar1 + 1, "1M") == 2
