"""24h tickers: a deterministic quote volume per market, for ranking a universe.

The volume is the market's typical base volume x 1,440 minutes x its last price, scaled by a
factor in [0.5, 1.5) drawn from its native id (so markets priced alike still rank apart), or
what :meth:`ExchangeSimulator.set_quote_volume` set. Each dialect renders it in its own shape.
"""
from __future__ import annotations

import hashlib

from .markets import MarketSpec, fmt_units
from .prices import iter_bars


def last_bar(spec: MarketSpec, now_ms: int):
    """The newest 1m bar at ``now_ms`` (None before the market's first trade)."""
    return next(iter(iter_bars(spec, 1, now_ms, now_ms, step=-1)), None)


def volume_factor(native_id: str) -> float:
    digest = hashlib.blake2b(native_id.encode(), digest_size=4).digest()
    return 0.5 + int.from_bytes(digest, "big") / 2**32


def ticker_numbers(spec: MarketSpec, now_ms: int, override: float | None) -> tuple[str, str, str] | None:
    """(last price, 24h base volume, 24h quote volume) as decimal strings; None without a bar."""
    bar = last_bar(spec, now_ms)
    if bar is None:
        return None
    last = fmt_units(bar[4], spec.price_decimals)
    price = float(last)
    quote = override if override is not None else spec.base_volume * 1440 * price * volume_factor(spec.native_id)
    base = quote / price if price > 0 else 0.0
    return last, f"{base:.8f}", f"{quote:.8f}"
