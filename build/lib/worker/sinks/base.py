"""The storage interface. A sink sees rows and series keys, never ccxt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol, Sequence

from core.series import OhlcvRow, SeriesKey

TABLE_NAME = "market_data_ohlcv"
LATEST_VIEW_NAME = "market_data_ohlcv_latest"
COLUMNS = ("timestamp", "exchange", "symbol", "timeframe", "open", "high", "low", "close",
           "volume", "ingested_at")


@dataclass
class WriteResult:
    """What a write did: rows stored, and rows the store refused with its reason."""

    written: int = 0
    rejected: list[tuple[OhlcvRow, str]] = field(default_factory=list)


class Sink(Protocol):
    def ensure(self) -> None:
        """Create what is missing (table, view, columns); idempotent, safe from many workers."""

    def write(self, rows: Sequence[OhlcvRow]) -> WriteResult:
        """Store rows. Raises SinkUnavailable (retry later) or SinkRejected (never retry)."""

    def last_timestamps(self, series: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        """Open time (epoch ms) of the newest stored bar per series, in one query; absent if none."""

    def stored_timestamps(self, series: SeriesKey, start_ms: int, end_ms: int) -> list[int]:
        """Open times (epoch ms) of the stored bars of one series in [start, end), ascending."""

    def close(self) -> None:
        ...
