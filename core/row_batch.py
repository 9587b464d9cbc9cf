"""The rows of one write, kept as they were handed over: candle pages as columns.

A HISTORY backfill hands its store 50,000 candles a second. As one named tuple per row, a
1,000-bar page costs about 1.1 ms to build, to pickle to the store's writer process and to
unpack into SQLite's parameters; as six columns it costs about 0.6 ms, most of it the bar
times' formatting (``python -m bench.run --only scale`` measures the whole path). So a page
travels as :class:`CandleColumns` from the backfill to the store. Every sink can still read a
:class:`RowBatch` as the sequence of rows it stands for (BigQuery, the dead-letter file); the
SQLite sink and the writer process read the columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, overload

from core.series import Candle, OhlcvRow, Row, SeriesKey, to_rows


class CandleColumns(NamedTuple):
    """Candles of one series, ascending, as columns, with the time they were fetched."""

    exchange: str
    symbol: str
    timeframe: str
    ingested_at: int
    timestamps: tuple[int, ...]
    opens: tuple[float, ...]
    highs: tuple[float, ...]
    lows: tuple[float, ...]
    closes: tuple[float, ...]
    volumes: tuple[float, ...]

    @classmethod
    def of(cls, series: SeriesKey, candles: Sequence[Candle], ingested_at: int) -> CandleColumns:
        columns = tuple(zip(*candles)) if candles else ((),) * len(Candle._fields)
        return cls(series.exchange, series.symbol, series.timeframe, ingested_at, *columns)

    @property
    def size(self) -> int:
        """How many candles (``len`` of a named tuple is its number of fields)."""
        return len(self.timestamps)

    def rows(self) -> list[OhlcvRow]:
        candles = zip(self.timestamps, self.opens, self.highs, self.lows, self.closes, self.volumes)
        return to_rows(SeriesKey(self.exchange, self.symbol, self.timeframe), candles, self.ingested_at)


Part = CandleColumns | Sequence[Row]


class RowBatch(Sequence[Row]):
    """Rows in the order they were added; candle pages stay columns until a row is asked for."""

    def __init__(self, parts: Iterable[Part] = ()) -> None:
        self.parts: list[Part] = []
        self._size = 0
        self._rows: list[Row] | None = None  # the rows, once somebody read them
        for part in parts:
            self._add(part)

    def add_candles(self, series: SeriesKey, candles: Sequence[Candle], ingested_at: int) -> None:
        self._add(CandleColumns.of(series, candles, ingested_at))

    def add_columns(self, columns: CandleColumns) -> None:
        self._add(columns)

    def add_rows(self, rows: Iterable[Row]) -> None:
        self._add(list(rows))

    def _add(self, part: Part) -> None:
        size = part.size if isinstance(part, CandleColumns) else len(part)
        if size:
            self.parts.append(part)
            self._size += size
            self._rows = None

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Row]:
        return iter(self._all_rows())

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        return self._all_rows()[index]

    def _all_rows(self) -> list[Row]:
        """Every row, built once: a sink that reads rows (BigQuery) iterates, then slices."""
        if self._rows is None:
            self._rows = [row for part in self.parts
                          for row in (part.rows() if isinstance(part, CandleColumns) else part)]
        return self._rows

    def __add__(self, other: RowBatch) -> RowBatch:
        return RowBatch([*self.parts, *other.parts])

    def __repr__(self) -> str:
        return f"RowBatch({self._size} rows in {len(self.parts)} parts)"
