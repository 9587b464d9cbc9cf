"""What the worker needs to know of a dataset to run it through LIVE, HISTORY and AUDIT.

The modes are written once, against this interface: how to page through a range
(``backfill``, which reports what the exchange no longer serves), how to turn what it fetched
into the rows of its table, and where the next fetch starts after a stored row.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol, Sequence

from core.series import SeriesKey
from worker.backfill import SeriesOutcome
from worker.exchange import ExchangeClient

# (series, items ascending) -> None; items are Candles, FundingPoints or OpenInterestPoints.
Emit = Callable[[SeriesKey, list[Any]], Awaitable[None]]


class Dataset(Protocol):
    name: str

    def unsupported_reason(self, client: ExchangeClient, series: SeriesKey) -> str | None:
        """Why this exchange cannot serve the series (after load_markets), or None."""

    async def backfill(self, client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                       page_limit: int, emit: Emit, should_stop: Callable[[], bool] = lambda: False,
                       concurrency: int = 1) -> SeriesOutcome:
        """Every row the exchange serves in [start, end), emitted in time order; never raises
        for exchange trouble (the outcome carries the error)."""

    def rows(self, series: SeriesKey, items: Sequence[Any], ingested_at: int) -> list[Any]:
        """The table rows of fetched items."""

    def next_after(self, series: SeriesKey, ts: int) -> int:
        """Where a fetch resumes after the row at ``ts`` (exclusive of it)."""

    def align_down(self, series: SeriesKey, ts: int) -> int:
        """The start of the period containing ``ts`` (``ts`` itself for funding)."""
