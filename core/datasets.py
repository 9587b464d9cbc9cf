"""The series a configured exchange asks for, in every dataset: candles per timeframe, the
funding rates, and open interest per period. Both processes enumerate them the same way (the
worker collects them, the supervisor summarises them)."""

from __future__ import annotations

from core.config import ExchangeConfig, SymbolConfig
from core.series import FUNDING_RATES, OPEN_INTEREST, SeriesKey, series_key


def symbol_series(exchange_id: str, entry: SymbolConfig) -> list[SeriesKey]:
    series = [SeriesKey(exchange_id, entry.symbol, tf) for tf in entry.timeframes]
    if entry.funding_rates:
        series.append(series_key(exchange_id, entry.symbol, "", FUNDING_RATES))
    series += [series_key(exchange_id, entry.symbol, period, OPEN_INTEREST) for period in entry.open_interest]
    return series


def configured_series(exchange_id: str, exchange: ExchangeConfig) -> list[SeriesKey]:
    return [s for entry in exchange.symbols for s in symbol_series(exchange_id, entry)]
