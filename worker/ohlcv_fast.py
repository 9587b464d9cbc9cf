"""A checked fast path for ccxt's ``parse_ohlcvs``: the same candles for a seventh of the CPU.

ccxt turns each kline row into ``[timestamp, open, high, low, close, volume]`` through six
generic ``safe_*`` calls per row (``safe_number_2`` -> ``safe_string_2`` -> ``parse_number``).
For a 1,000-bar page that is 2.4-5 ms of a worker's CPU (0.35 ms on this path), more than the HTTP
request itself, and a HISTORY backfill at Binance's 50 pages a second turns CPU-bound on it.

Each exchange's ``parse_ohlcv`` is, for list rows, a fixed choice of columns: ``int`` of one,
``float`` of five others (Binance reads volume from column 7 for inverse markets, OKX from
column 6 for swaps, Kraken scales seconds to milliseconds). Rather than hard-code those rules,
the layout is checked against ccxt itself: ccxt parses a few sample rows, and the fast path is
taken only when the samples prove the layout is columns 0-5 as they are, each column
identified without ambiguity. The proof holds for the market and the row width it was made
on (ccxt picks columns by market, never by value), so later pages of that market skip it.
Anything else (dict rows, a value that will not convert, a layout that differs or that the
samples cannot tell apart) goes through ccxt unchanged.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Callable, get_type_hints

import msgspec

from core.series import Candle

_COLUMNS = len(Candle._fields)
_TIMESTAMP = itemgetter(0)

# A kline row read as a Candle's fields, in order; the columns after them are ignored.
# msgspec converts in C, and lax (strict=False) it reads a decimal string as float() does:
# 5,000 numbers a page for a fifth of the CPU of a list comprehension of float() calls.
# It refuses what float() bends (bools, " 1.5 ", "1_000", a fractional timestamp): such a
# page goes through ccxt.
_KLINES = list[msgspec.defstruct("Kline", list(get_type_hints(Candle).items()), array_like=True)]


def install(exchange: Any) -> None:
    """Give ``exchange`` (a ccxt instance) the checked fast ``parse_ohlcvs``; a no-op for others."""
    needed = ("parse_ohlcvs", "parse_ohlcv", "filter_by_limit", "array_slice")
    if not all(callable(getattr(exchange, name, None)) for name in needed):
        return  # not a ccxt exchange (a test double): nothing to speed up
    exchange.parse_ohlcvs = fast_parse_ohlcvs(exchange, exchange.parse_ohlcvs)


def fast_parse_ohlcvs(exchange: Any, slow: Callable[..., list]) -> Callable[..., list]:
    """``parse_ohlcvs`` with ccxt's signature; ``slow`` is ccxt's own, used whenever unsure."""
    parse_row = exchange.parse_ohlcv
    proven: set[tuple] = set()  # layout keys (market, row width) whose columns are 0-5 as they are

    def parse_ohlcvs(ohlcvs: Any, market: Any = None, timeframe: str = "1m", since: Any = None,
                     limit: Any = None, tail: bool = False) -> list:
        rows = _convert(ohlcvs, market, parse_row, proven)
        if rows is None:
            return slow(ohlcvs, market, timeframe, since, limit, tail)
        # What ccxt's parse_ohlcvs does next, step by step: sort by time (stable), keep bars
        # from ``since`` on (its filter_by_since_limit, minus a safe_integer per row: these
        # timestamps are ints), then its own limit selection.
        rows.sort(key=_TIMESTAMP)
        if since is not None:
            rows = [r for r in rows if r[0] != 0 and r[0] >= since]
        if tail and limit is not None:
            return exchange.array_slice(rows, -limit)
        return exchange.filter_by_limit(rows, limit, 0, not tail and since is not None)

    return parse_ohlcvs


def _convert(ohlcvs: Any, market: Any, parse_row: Callable[[Any, Any], list], proven: set[tuple]) -> list[list] | None:
    """Rows as ccxt would parse them, or None when the page must go through ccxt."""
    if type(ohlcvs) is not list or not ohlcvs:
        return None
    if set(map(type, ohlcvs)) != {list} or len(widths := set(map(len, ohlcvs))) != 1:
        return None
    width = widths.pop()
    if width < _COLUMNS:
        return None
    key = _layout_key(market, width)
    if key not in proven:
        if not _layout_is_plain(ohlcvs, market, parse_row):
            return None
        proven.add(key)
    try:  # every row is a list of one width, six or more: checked above
        return msgspec.to_builtins(msgspec.convert(ohlcvs, _KLINES, strict=False))
    except msgspec.ValidationError:
        return None  # a null or an empty string: ccxt turns it into None, which we let it do


def _layout_key(market: Any, width: int) -> tuple:
    """What ccxt's choice of columns depends on: the market (its id, type and whether it is
    inverse or linear) and how many columns a row has."""
    if not isinstance(market, dict):
        return (None, width)
    return (market.get("id"), market.get("type"), market.get("inverse"), market.get("linear"), width)


def _layout_is_plain(ohlcvs: list, market: Any, parse_row: Callable[[Any, Any], list]) -> bool:
    """Whether ccxt reads column k of these rows as output k, proven on sample rows.

    A column is identified when, across the samples, only raw column k matches output k
    (a flat candle has open = high = low = close, so one row alone rarely decides). The
    timestamp must come through unscaled. The rows are lists of one width, six or more.
    """
    samples = _samples(ohlcvs)
    candidates: list[set[int]] = [set(range(1, len(samples[0]))) for _ in range(_COLUMNS)]
    for raw in samples:
        parsed = parse_row(raw, market)
        if type(parsed) is not list or len(parsed) != _COLUMNS:
            return False
        try:
            if parsed[0] != int(raw[0]):
                return False
        except (TypeError, ValueError, OverflowError):
            return False
        values = [_as_float(v) for v in raw]
        for k in range(1, _COLUMNS):
            candidates[k] &= {j for j, v in enumerate(values) if j > 0 and v is not None and v == parsed[k]}
    return all(candidates[k] == {k} for k in range(1, _COLUMNS))


def _samples(ohlcvs: list) -> list[list]:
    """Up to eight rows spread over the page: enough to tell columns apart in practice."""
    n = len(ohlcvs)
    picks = sorted({0, n - 1, *(n * i // 7 for i in range(1, 7))} & set(range(n)))
    return [ohlcvs[i] for i in picks]


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None
