"""Funding rates and open interest as ccxt hands them over, validated.

As for candles, one bad entry (a null rate, a negative or non-finite open interest, a
timestamp off the period grid) is rejected with a reason and counted; the rest of its page
is kept. A repeated timestamp keeps its first copy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from core.series import FundingPoint, OpenInterestPoint, SeriesKey
from core.timeframes import is_on_grid
from worker.candles import Rejection, finite_number

log = logging.getLogger(__name__)


@dataclass
class ParsedPoints:
    points: list[Any] = field(default_factory=list)     # ascending by timestamp
    rejected: list[Rejection] = field(default_factory=list)


def _timestamp(entry: dict) -> int | str:
    ts = entry.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        return f"bad timestamp {ts!r}"
    return int(ts)


def _funding(entry: Any, period: str) -> FundingPoint | str:
    if not isinstance(entry, dict):
        return "malformed: expected a funding rate structure"
    ts = _timestamp(entry)
    if isinstance(ts, str):
        return ts
    rate = finite_number(entry.get("fundingRate"))
    if rate is None:
        return f"funding rate is not a finite number: {entry.get('fundingRate')!r}"
    return FundingPoint(ts, rate)


def _open_interest(entry: Any, period: str) -> OpenInterestPoint | str:
    if not isinstance(entry, dict):
        return "malformed: expected an open interest structure"
    ts = _timestamp(entry)
    if isinstance(ts, str):
        return ts
    amount = finite_number(entry.get("openInterestAmount"))
    if amount is None:
        return f"open interest amount is not a finite number: {entry.get('openInterestAmount')!r}"
    raw_value = entry.get("openInterestValue")
    value = None if raw_value is None else finite_number(raw_value)
    if raw_value is not None and value is None:
        return f"open interest value is not a finite number: {raw_value!r}"
    if amount < 0 or (value is not None and value < 0):
        return f"open interest is negative: amount {amount}, value {value}"
    if not is_on_grid(ts, period):
        return f"timestamp {ts} is not on the {period} grid"
    return OpenInterestPoint(ts, amount, value)


def _parse(raw: Iterable[Any] | None, period: str, one: Callable[[Any, str], Any]) -> ParsedPoints:
    parsed = ParsedPoints()
    if raw is not None and not isinstance(raw, (list, tuple)):
        parsed.rejected.append(Rejection(raw, "malformed answer: expected a list"))
        return parsed
    seen: set[int] = set()
    for entry in raw or ():
        result = one(entry, period)
        if isinstance(result, str):
            parsed.rejected.append(Rejection(entry.get("info", entry) if isinstance(entry, dict) else entry,
                                             result))
        elif result.timestamp in seen:
            parsed.rejected.append(Rejection(entry.get("info", entry), f"duplicate timestamp {result.timestamp}"))
        else:
            seen.add(result.timestamp)
            parsed.points.append(result)
    parsed.points.sort()
    return parsed


def parse_funding(raw: Iterable[Any] | None) -> ParsedPoints:
    return _parse(raw, "", _funding)


def parse_open_interest(raw: Iterable[Any] | None, period: str) -> ParsedPoints:
    return _parse(raw, period, _open_interest)


def log_point_rejections(series: SeriesKey, parsed: ParsedPoints) -> None:
    for rejection in parsed.rejected[:20]:
        log.warning("rejected %s row from %s: %s", series.dataset, series, rejection.reason,
                    extra={"event": "row_rejected", "symbol": series.symbol, "timeframe": series.timeframe,
                           "dataset": series.dataset, "reason": rejection.reason,
                           "raw": repr(rejection.raw)[:200]})
    if len(parsed.rejected) > 20:
        log.warning("%d more rejected rows from %s", len(parsed.rejected) - 20, series,
                    extra={"event": "row_rejected", "symbol": series.symbol, "timeframe": series.timeframe,
                           "dataset": series.dataset, "count": len(parsed.rejected) - 20})
