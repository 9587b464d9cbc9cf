"""Open interest per period: ``market_data_open_interest``, keyed (exchange, symbol,
timeframe, timestamp); the timestamp is the period's open on the period grid."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from core.series import OPEN_INTEREST, OpenInterestPoint, OpenInterestRow, SeriesKey, open_interest_rows
from core.timeframes import bar_start, next_bar_start, timeframe_ms
from worker.backfill import SeriesOutcome
from worker.datasets.base import Emit
from worker.datasets.derivatives import contract_reason
from worker.datasets.facts import open_interest_facts
from worker.datasets.paging import backfill_points
from worker.datasets.points import ParsedPoints, parse_open_interest
from worker.exchange import ExchangeClient


class OpenInterest:
    name = OPEN_INTEREST

    def unsupported_reason(self, client: ExchangeClient, series: SeriesKey) -> str | None:
        reason = contract_reason(client, series, "fetchOpenInterestHistory")
        periods = open_interest_facts(client.exchange_id).periods
        if reason is None and periods is not None and series.timeframe not in periods:
            reason = (f"{client.exchange_id} does not serve open interest per {series.timeframe} "
                      f"(it serves {', '.join(periods)})")
        return reason

    async def backfill(self, client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                       page_limit: int, emit: Emit, should_stop: Callable[[], bool] = lambda: False,
                       concurrency: int = 1) -> SeriesOutcome:
        facts = open_interest_facts(client.exchange_id)
        period = series.timeframe
        step = timeframe_ms(period)

        async def window(cursor: int, stop: int, limit: int) -> tuple[ParsedPoints, int | None]:
            # One page is one window of ``limit`` periods: an empty window (before listing, an
            # exchange pause) moves on instead of ending the range.
            last = cursor + (limit - 1) * step
            raw = await client.fetch_open_interest_history(series.symbol, period, cursor, limit,
                                                           {"until": last})
            return parse_open_interest(raw, period), last + step

        return await backfill_points(
            client, series, start_ms, end_ms, facts=facts, page_limit=facts.page_limit,
            first_at_or_after=lambda ts: self._first_at_or_after(ts, period), emit=emit,
            should_stop=should_stop, forward=window)

    @staticmethod
    def _first_at_or_after(ts: int, period: str) -> int:
        start = bar_start(ts, period)
        return start if start >= ts else next_bar_start(start, period)

    def rows(self, series: SeriesKey, items: Sequence[OpenInterestPoint],
             ingested_at: int) -> list[OpenInterestRow]:
        return open_interest_rows(series, items, ingested_at)

    def next_after(self, series: SeriesKey, ts: int) -> int:
        return next_bar_start(ts, series.timeframe)

    def align_down(self, series: SeriesKey, ts: int) -> int:
        return bar_start(ts, series.timeframe)

    def live_lookback_ms(self, series: SeriesKey, interval_s: float) -> int:
        # The period closed since the previous cycle opened one period before it.
        return timeframe_ms(series.timeframe) + int(3 * interval_s * 1000) + 60_000

    @staticmethod
    def values(point: Any) -> tuple:
        return tuple(point[1:])
