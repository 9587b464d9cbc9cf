"""The series a configured exchange asks for, in every dataset: candles per timeframe, the
funding rates, and open interest per period. Both processes enumerate them the same way (the
worker collects them, the supervisor summarises them)."""

from __future__ import annotations

from typing import Iterable

from core.config import ExchangeConfig, SymbolConfig, UniverseConfig
from core.series import FUNDING_RATES, OPEN_INTEREST, SeriesKey, series_key
from core.shards import Shard


def symbol_series(exchange_id: str, symbol: str, wanted: SymbolConfig | UniverseConfig) -> list[SeriesKey]:
    """The series ``wanted`` asks of one symbol (a symbol entry, or the universe's rule)."""
    series = [SeriesKey(exchange_id, symbol, tf) for tf in wanted.timeframes]
    if wanted.funding_rates:
        series.append(series_key(exchange_id, symbol, "", FUNDING_RATES))
    series += [series_key(exchange_id, symbol, period, OPEN_INTEREST) for period in wanted.open_interest]
    return series


def configured_series(exchange_id: str, exchange: ExchangeConfig, universe_symbols: Iterable[str] = (),
                      shard: Shard | None = None) -> list[SeriesKey]:
    """Explicit symbols, then the ones the universe selected, each series once.

    ``shard`` is the shard when the config is split by series: only the (exchange, symbol)
    pairs it owns are kept. None keeps every series.
    """
    series = [s for entry in exchange.symbols for s in symbol_series(exchange_id, entry.symbol, entry)]
    if exchange.universe is not None:
        series += [s for symbol in universe_symbols for s in symbol_series(exchange_id, symbol, exchange.universe)]
    return [s for s in dict.fromkeys(series) if shard is None or shard.owns_symbol(exchange_id, s.symbol)]
