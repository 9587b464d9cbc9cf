"""Candles as the worker sees them, their validation, and the rows handed to a sink.

Exchanges occasionally send nonsense (nulls, negative volume, high below low, a timestamp
off the bar grid, the same bar twice). One bad bar must not cost the rest of its batch, and
must never reach the table: it is rejected with a reason and counted.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from core.series import Candle, SeriesKey
from core.timeframes import epoch_grid_ms, is_on_grid

log = logging.getLogger(__name__)

# A named tuple's own constructor is a Python function; a backfill builds a candle per bar.
_new_tuple = tuple.__new__


@dataclass(frozen=True)
class Rejection:
    raw: Any
    reason: str


@dataclass
class ParsedBatch:
    """Valid candles in ascending time order, plus what was rejected and why."""

    candles: list[Candle] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def finite_number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, strings that are not numbers, NaN, inf,
    an integer too large for a float)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _sane_candle(raw: list, grid_ms: int | None) -> Candle | None:
    """The usual case, checked fast: what ccxt hands over (an int and five floats), all sane.

    None means "look closer" (:func:`_check_slowly` also names the reason).
    ``0 <= low <= open, close <= high`` is the same rule as the slow checks.
    """
    ts, o, h, l, c, v = raw
    if (grid_ms and type(ts) is int and type(o) is float and type(h) is float
            and type(l) is float and type(c) is float and type(v) is float
            and math.isfinite(o + h + l + c + v) and 0.0 <= l <= o <= h and l <= c <= h
            and v >= 0.0 and ts >= 0 and ts % grid_ms == 0):
        return _new_tuple(Candle, raw)
    return None


def _check_slowly(raw: Any, timeframe: str) -> Candle | str:
    if not isinstance(raw, (list, tuple)) or len(raw) < 6:
        return "malformed: expected [timestamp, open, high, low, close, volume]"
    ts = raw[0]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        return f"bad timestamp {ts!r}"
    ts = int(ts)
    values = [finite_number(v) for v in raw[1:6]]
    names = ("open", "high", "low", "close", "volume")
    for name, original, number in zip(names, raw[1:6], values):
        if number is None:
            return f"{name} is not a finite number: {original!r}"
        if number < 0:
            return f"{name} is negative: {number}"
    o, h, l, c, v = values  # type: ignore[misc]
    if h < max(o, c, l):
        return f"high {h} is below max(open, close, low)"
    if l > min(o, c, h):
        return f"low {l} is above min(open, close, high)"
    if not is_on_grid(ts, timeframe):
        return f"timestamp {ts} is not on the {timeframe} grid"
    return Candle(ts, o, h, l, c, v)


def parse_candles(raw_rows: Iterable[Any] | None, timeframe: str) -> ParsedBatch:
    """Validate a batch as returned by ccxt; sort it; reject repeated timestamps.

    A repeated timestamp within one answer is ambiguous (which version is right?); the first
    one is kept, as the exchanges we know send the repeat as the stale copy at page seams.
    """
    batch = ParsedBatch()
    if raw_rows is not None and not isinstance(raw_rows, (list, tuple)):
        batch.rejected.append(Rejection(raw_rows, "malformed answer: expected a list of candles"))
        return batch
    # A backfill page is 1,000 candles, ascending as a rule: its loop is kept tight, and the
    # set of timestamps seen is built only once one arrives out of order.
    grid_ms = epoch_grid_ms(timeframe)
    candles, rejected = batch.candles, batch.rejected
    seen: set[int] | None = None
    newest = -1
    for raw in raw_rows or ():
        candle = _sane_candle(raw, grid_ms) if type(raw) is list and len(raw) == 6 else None
        if candle is None:
            result = _check_slowly(raw, timeframe)
            if isinstance(result, str):
                rejected.append(Rejection(raw, result))
                continue
            candle = result
        ts = candle[0]
        if ts > newest:
            newest = ts
            if seen is not None:
                seen.add(ts)
            candles.append(candle)
            continue
        if seen is None:
            seen = {c[0] for c in candles}
        if ts in seen:
            rejected.append(Rejection(raw, f"duplicate timestamp {ts}"))
        else:
            seen.add(ts)
            candles.append(candle)
    if seen is not None:
        candles.sort()
    return batch


def log_rejections(series: SeriesKey, batch: ParsedBatch) -> None:
    for rejection in batch.rejected[:20]:  # a flood of bad rows must not flood the logs
        log.warning("rejected candle from %s: %s", series, rejection.reason,
                    extra={"event": "candle_rejected", "symbol": series.symbol,
                           "timeframe": series.timeframe, "reason": rejection.reason,
                           "raw": repr(rejection.raw)[:200]})
    if len(batch.rejected) > 20:
        log.warning("%d more rejected candles from %s", len(batch.rejected) - 20, series,
                    extra={"event": "candle_rejected", "symbol": series.symbol,
                           "timeframe": series.timeframe, "count": len(batch.rejected) - 20})
