"""Candles: ``market_data_ohlcv``, the original dataset, run by its own tuned code paths
(:mod:`worker.backfill`, :mod:`worker.candles`, :mod:`worker.live_bars`)."""

from __future__ import annotations

from typing import Callable, Sequence

from core.series import OHLCV, Candle, OhlcvRow, SeriesKey, to_rows
from core.timeframes import bar_start, next_bar_start
from worker.backfill import SeriesOutcome, backfill_series
from worker.datasets.base import Emit
from worker.exchange import ExchangeClient


class Ohlcv:
    name = OHLCV

    def unsupported_reason(self, client: ExchangeClient, series: SeriesKey) -> str | None:
        return client.unsupported_reason(series.symbol, series.timeframe)

    async def backfill(self, client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                       page_limit: int, emit: Emit, should_stop: Callable[[], bool] = lambda: False,
                       concurrency: int = 1) -> SeriesOutcome:
        return await backfill_series(client, series, start_ms, end_ms, page_limit=page_limit, emit=emit,
                                     should_stop=should_stop, concurrency=concurrency)

    def rows(self, series: SeriesKey, items: Sequence[Candle], ingested_at: int) -> list[OhlcvRow]:
        return to_rows(series, items, ingested_at)

    def next_after(self, series: SeriesKey, ts: int) -> int:
        return next_bar_start(ts, series.timeframe)

    def align_down(self, series: SeriesKey, ts: int) -> int:
        return bar_start(ts, series.timeframe)
