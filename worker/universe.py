"""The universe: which symbols of an exchange a rule selects, from its markets and tickers.

Pure on purpose: the adapter (:mod:`worker.exchange`) fetches markets and one ticker
snapshot, this module decides, and the tests need neither ccxt nor a network.
Ranking uses 24h quote volume, highest first, ties by symbol name so every shard and every
refresh ranks the same snapshot the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Iterable, Mapping

from core.config import UniverseConfig


@dataclass(frozen=True)
class UniverseChange:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def quote_volume(ticker: Mapping[str, Any] | None) -> float:
    """24h volume in the quote currency; estimated from base volume and price if absent."""
    if not ticker:
        return 0.0
    value = _number(ticker.get("quoteVolume"))
    if value is None:
        base, price = _number(ticker.get("baseVolume")), _number(ticker.get("vwap") or ticker.get("last"))
        value = base * price if base is not None and price is not None else None
    return value if value is not None and value >= 0 else 0.0


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_active(market: Mapping[str, Any]) -> bool:
    # ccxt says None when the exchange does not tell; only an explicit False is inactive.
    return market.get("active") is not False


def _matches(symbol: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(symbol, pattern) for pattern in patterns)


def select_symbols(rules: UniverseConfig, markets: Mapping[str, Mapping[str, Any]],
                   tickers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The symbols ``rules`` select, sorted by name.

    Candidates are active markets of the rule's type that no ``exclude`` pattern matches.
    Of those quoted in ``quote`` and at or above the volume floor, the ``top`` largest by 24h
    quote volume enter; ``include`` patterns enter whatever their quote, rank or volume.
    """
    candidates = [symbol for symbol, market in markets.items()
                  if is_active(market) and market.get("type") == rules.type
                  and not _matches(symbol, rules.exclude)]
    ranked = sorted(((quote_volume(tickers.get(s)), s) for s in candidates
                     if str(markets[s].get("quote") or "").upper() in rules.quote),
                    key=lambda pair: (-pair[0], pair[1]))
    eligible = [s for volume, s in ranked if volume >= rules.min_quote_volume]
    chosen = set(eligible if rules.top is None else eligible[:rules.top])
    chosen |= {s for s in candidates if _matches(s, rules.include)}
    return sorted(chosen)


def diff(before: Iterable[str], after: Iterable[str]) -> UniverseChange:
    old, new = set(before), set(after)
    return UniverseChange(sorted(new - old), sorted(old - new))
