"""Realized funding rates: ``market_data_funding_rates``, keyed (exchange, symbol, timestamp).

The timestamp is the funding time exactly as the exchange reports it (a few milliseconds off
the hour is common); funding happens every 8, 4 or 1 hours depending on the symbol.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from core.series import FUNDING_RATES, FundingPoint, FundingRow, SeriesKey, funding_rows
from worker.backfill import SeriesOutcome
from worker.datasets.base import Emit
from worker.datasets.derivatives import contract_reason
from worker.datasets.facts import funding_facts
from worker.datasets.paging import backfill_points
from worker.datasets.points import ParsedPoints, parse_funding
from worker.exchange import ExchangeClient


class FundingRates:
    name = FUNDING_RATES

    def unsupported_reason(self, client: ExchangeClient, series: SeriesKey) -> str | None:
        return contract_reason(client, series, "fetchFundingRateHistory")

    async def backfill(self, client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                       page_limit: int, emit: Emit, should_stop: Callable[[], bool] = lambda: False,
                       concurrency: int = 1) -> SeriesOutcome:
        facts = funding_facts(client.exchange_id)

        async def forward(cursor: int, stop: int, limit: int) -> tuple[ParsedPoints, int | None]:
            raw = await client.fetch_funding_rate_history(series.symbol, cursor, limit)
            parsed = parse_funding(raw)
            full = len(raw or ()) >= limit and parsed.points
            return parsed, (parsed.points[-1].timestamp + 1 if full else None)

        async def backward(after: int, limit: int) -> tuple[ParsedPoints, int]:
            # Everything before ``after``: OKX's ``after`` is exclusive, ccxt's ``until`` inclusive.
            before = after if facts.before_param == "after" else after - 1
            raw = await client.fetch_funding_rate_history(series.symbol, None, limit, {facts.before_param: before})
            return parse_funding(raw), len(raw or ())

        return await backfill_points(
            client, series, start_ms, end_ms, facts=facts, page_limit=facts.page_limit,
            first_at_or_after=lambda ts: ts, emit=emit, should_stop=should_stop,
            forward=None if facts.newest_first else forward,
            backward=backward if facts.newest_first else None)

    def rows(self, series: SeriesKey, items: Sequence[FundingPoint], ingested_at: int) -> list[FundingRow]:
        return funding_rows(series, items, ingested_at)

    def next_after(self, series: SeriesKey, ts: int) -> int:
        return ts + 1

    def align_down(self, series: SeriesKey, ts: int) -> int:
        return ts

    def live_lookback_ms(self, series: SeriesKey, interval_s: float) -> int:
        # A rate realized since the previous cycle, with room for a late answer.
        return int(3 * interval_s * 1000) + 60_000

    @staticmethod
    def values(point: Any) -> tuple:
        return tuple(point[1:])
