"""What the simulator serves, as ccxt parses it: the oracle the tests compare stores with."""
from __future__ import annotations

import time

from .markets import MINUTE_MS, Bar, MarketSpec, bar_strings, market
from .prices import bar_at, iter_bars

TIMEFRAME_MINUTES: dict[str, int] = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120,
    "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": 1440,
}


def bar_row(spec: MarketSpec, bar: Bar) -> list:
    """[ts_ms, o, h, l, c, v] floats as ccxt parses them from the served strings."""
    return [bar[0], *(float(s) for s in bar_strings(spec, bar))]


def timeframe_minutes(timeframe: str) -> int:
    """Minutes per bar for a ccxt unified timeframe ("1m" ... "1d")."""
    try:
        return TIMEFRAME_MINUTES[timeframe]
    except KeyError:
        raise ValueError(f"unsupported timeframe {timeframe!r}") from None


def _default_now_ms() -> int:
    return int(time.time() * 1000)


def truth(exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int,
          now_ms: int | None = None) -> list[list]:
    """Expected CLOSED candles ``[ts_ms, o, h, l, c, v]`` with open time in [start, end).

    Floats are exactly what ccxt parses from the served strings. A bar is
    closed when ``open + duration <= now_ms`` (exchange clock; defaults to the
    wall clock, so a range reaching "now" never includes the open bar).
    Timeframes are UTC-aligned, as ccxt requests them on every dialect.
    """
    spec = market(exchange, symbol)
    minutes = timeframe_minutes(timeframe)
    now = _default_now_ms() if now_ms is None else now_ms
    size = minutes * MINUTE_MS
    return [bar_row(spec, bar)
            for bar in iter_bars(spec, minutes, start_ms, now, to_ms=end_ms - 1)
            if bar[0] + size <= now]


def served_bar(exchange: str, symbol: str, timeframe: str, ts_ms: int, now_ms: int) -> list | None:
    """The bar opening at ``ts_ms`` as served at ``now_ms`` (partial if open)."""
    spec = market(exchange, symbol)
    bar = bar_at(spec, ts_ms, timeframe_minutes(timeframe), now_ms)
    return None if bar is None else bar_row(spec, bar)
