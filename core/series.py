"""Series, candles and rows: the values both processes and every store speak of."""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

# The datasets a symbol entry can ask for (design.md section 9); candles are the default.
OHLCV = "ohlcv"
FUNDING_RATES = "funding_rates"
OPEN_INTEREST = "open_interest"
DATASETS = (OHLCV, FUNDING_RATES, OPEN_INTEREST)


class SeriesKey(NamedTuple):
    """One candle series (exchange, symbol, timeframe), as it always was."""

    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.timeframe}"

    dataset = OHLCV


class DatasetKey(NamedTuple):
    """A series of another dataset. ``timeframe`` is the open-interest period; funding rates
    have none (""), their interval is the exchange's. Candle series stay :class:`SeriesKey`,
    so everything that unpacks three fields keeps working."""

    exchange: str
    symbol: str
    timeframe: str
    dataset: str

    def __str__(self) -> str:
        tail = f":{self.timeframe}" if self.timeframe else ""
        return f"{self.exchange}:{self.symbol}:{self.dataset}{tail}"


def series_key(exchange: str, symbol: str, timeframe: str, dataset: str = OHLCV) -> SeriesKey:
    """The key of a series of any dataset (also from the plain tuples of protocol messages)."""
    if dataset == OHLCV:
        return SeriesKey(exchange, symbol, timeframe)
    return DatasetKey(exchange, symbol, timeframe, dataset)  # type: ignore[return-value]


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

    dataset = OHLCV


class FundingPoint(NamedTuple):
    """One realized funding rate; ``timestamp`` is the funding time as the exchange reports it."""

    timestamp: int
    funding_rate: float


class OpenInterestPoint(NamedTuple):
    """Open interest of one period; ``value`` is None when the exchange gives none."""

    timestamp: int
    amount: float
    value: float | None


class FundingRow(NamedTuple):
    """One row of ``market_data_funding_rates``."""

    timestamp: int
    exchange: str
    symbol: str
    funding_rate: float
    ingested_at: int

    @property
    def series(self) -> SeriesKey:
        return DatasetKey(self.exchange, self.symbol, "", FUNDING_RATES)  # type: ignore[return-value]

    dataset = FUNDING_RATES


class OpenInterestRow(NamedTuple):
    """One row of ``market_data_open_interest``; ``timeframe`` is the period."""

    timestamp: int
    exchange: str
    symbol: str
    timeframe: str
    open_interest_amount: float
    open_interest_value: float | None
    ingested_at: int

    @property
    def series(self) -> SeriesKey:
        return DatasetKey(self.exchange, self.symbol, self.timeframe, OPEN_INTEREST)  # type: ignore[return-value]

    dataset = OPEN_INTEREST


Row = OhlcvRow | FundingRow | OpenInterestRow
ROW_TYPES: dict[str, type] = {OHLCV: OhlcvRow, FUNDING_RATES: FundingRow, OPEN_INTEREST: OpenInterestRow}


def rows_by_dataset(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """A batch split by dataset, in order; a batch of one dataset (the usual case) is not copied."""
    kinds = set(map(type, rows))  # in C: no Python-level work per row
    if len(kinds) <= 1:
        return {getattr(kinds.pop(), "dataset", OHLCV): rows} if kinds else {}  # type: ignore[dict-item]
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(getattr(row, "dataset", OHLCV), []).append(row)  # others fail with the candles
    return grouped


# A named tuple's own constructor is a Python function; a backfill builds a row per candle.
_new_tuple = tuple.__new__


def to_rows(series: SeriesKey, candles: Iterable[Candle], ingested_at: int) -> list[OhlcvRow]:
    exchange, symbol, timeframe = series.exchange, series.symbol, series.timeframe
    return [_new_tuple(OhlcvRow, (ts, exchange, symbol, timeframe, o, h, l, c, v, ingested_at))
            for ts, o, h, l, c, v in candles]


def funding_rows(series: SeriesKey, points: Iterable[FundingPoint], ingested_at: int) -> list[FundingRow]:
    exchange, symbol = series.exchange, series.symbol
    return [FundingRow(ts, exchange, symbol, rate, ingested_at) for ts, rate in points]


def open_interest_rows(series: SeriesKey, points: Iterable[OpenInterestPoint],
                       ingested_at: int) -> list[OpenInterestRow]:
    exchange, symbol, period = series.exchange, series.symbol, series.timeframe
    return [OpenInterestRow(ts, exchange, symbol, period, amount, value, ingested_at)
            for ts, amount, value in points]
