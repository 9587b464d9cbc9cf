"""Timeframe arithmetic on the candle grid.

Exchanges open bars on fixed boundaries: sub-daily and daily bars on multiples of their
length since the Unix epoch (UTC), weekly bars on Mondays (the epoch was a Thursday, so an
epoch-aligned 7-day grid would be wrong), monthly and yearly bars on calendar boundaries
(ccxt counts a month as 30 days, which is fine for a duration but not for a grid).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([smhdwMy])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
_MONDAY_OFFSET_MS = 4 * 86_400_000  # 1970-01-05 was the first Monday after the epoch


def is_valid_timeframe(timeframe: str) -> bool:
    """True for names ccxt understands: a positive amount and a unit of s, m, h, d, w, M, y."""
    return bool(_TIMEFRAME.match(timeframe))


@lru_cache(maxsize=256)  # called per candle on hot paths; a regex match each time shows
def _split(timeframe: str) -> tuple[int, str]:
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ValueError(f"invalid timeframe {timeframe!r}")
    return int(match.group(1)), match.group(2)


@lru_cache(maxsize=256)
def timeframe_ms(timeframe: str) -> int:
    """Nominal length of one bar in milliseconds (months as 30 days, like ccxt)."""
    amount, unit = _split(timeframe)
    return amount * _UNIT_SECONDS[unit] * 1000


def _month_index(ts_ms: int) -> int:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.year * 12 + dt.month - 1


def _month_start_ms(index: int) -> int:
    year, month = divmod(index, 12)
    return int(datetime(year, month + 1, 1, tzinfo=UTC).timestamp() * 1000)


def bar_start(ts_ms: int, timeframe: str) -> int:
    """Open time of the bar that contains ``ts_ms``."""
    amount, unit = _split(timeframe)
    if unit in ("M", "y"):
        months = amount * (12 if unit == "y" else 1)
        return _month_start_ms(_month_index(ts_ms) // months * months)
    length = amount * _UNIT_SECONDS[unit] * 1000
    offset = _MONDAY_OFFSET_MS if unit == "w" else 0
    return (ts_ms - offset) // length * length + offset


def next_bar_start(ts_ms: int, timeframe: str) -> int:
    """Open time of the bar after the one containing ``ts_ms`` (its close time)."""
    amount, unit = _split(timeframe)
    if unit in ("M", "y"):
        months = amount * (12 if unit == "y" else 1)
        return _month_start_ms(_month_index(bar_start(ts_ms, timeframe)) + months)
    return bar_start(ts_ms, timeframe) + timeframe_ms(timeframe)


def has_fixed_length(timeframe: str) -> bool:
    """Whether every bar of ``timeframe`` lasts as long: not months or years."""
    return _split(timeframe)[1] not in ("M", "y")


@lru_cache(maxsize=256)
def epoch_grid_ms(timeframe: str) -> int | None:
    """The bar length of a grid aligned on the epoch (s, m, h, d), None for w, M and y."""
    amount, unit = _split(timeframe)
    return amount * _UNIT_SECONDS[unit] * 1000 if unit in ("s", "m", "h", "d") else None


def is_on_grid(ts_ms: int, timeframe: str) -> bool:
    grid_ms = epoch_grid_ms(timeframe)
    if grid_ms:  # one modulo instead of a date computation
        return ts_ms % grid_ms == 0
    return bar_start(ts_ms, timeframe) == ts_ms


def bars_between(start_ms: int, end_ms: int, timeframe: str) -> int:
    """Number of grid bars opening in [start, end)."""
    count, ts = 0, bar_start(start_ms, timeframe)
    if ts < start_ms:
        ts = next_bar_start(ts, timeframe)
    if has_fixed_length(timeframe):
        step = timeframe_ms(timeframe)
        return max(0, -(-(end_ms - ts) // step))
    while ts < end_ms:
        count += 1
        ts = next_bar_start(ts, timeframe)
    return count
