"""Series, candles and rows: the values both processes and every store speak of."""

from __future__ import annotations

from typing import Iterable, NamedTuple


class SeriesKey(NamedTuple):
    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"


class Candle(NamedTuple):
    """One OHLCV bar; ``timestamp`` is the bar's open time in epoch milliseconds (UTC)."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class OhlcvRow(NamedTuple):
    """One row of ``market_data_ohlcv``; times in epoch milliseconds, formatted by the sink."""

    timestamp: int
    exchange: str
    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    ingested_at: int

    @property
    def series(self) -> SeriesKey:
        return SeriesKey(self.exchange, self.symbol, self.timeframe)


# A named tuple's own constructor is a Python function; a backfill builds a row per candle.
_new_tuple = tuple.__new__


def to_rows(series: SeriesKey, candles: Iterable[Candle], ingested_at: int) -> list[OhlcvRow]:
    exchange, symbol, timeframe = series
    return [_new_tuple(OhlcvRow, (ts, exchange, symbol, timeframe, o, h, l, c, v, ingested_at))
            for ts, o, h, l, c, v in candles]
