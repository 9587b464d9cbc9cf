"""Funding rates and open interest of the simulated perpetual swaps, deterministic like prices.

Funding happens every 8 hours (4 hours for SOL perpetuals, as some real symbols do; every hour
on Hyperliquid, whose perpetuals all fund hourly), a few milliseconds after the hour, as
exchanges report it. Open interest is one value per period, served once the period is over.
Values are integer units formatted by :func:`fmt_units`, so ccxt's parse of a served string
equals :func:`truth_funding` / :func:`truth_open_interest`.
"""
from __future__ import annotations

from .markets import MINUTE_MS, MarketSpec, fmt_units, market
from .prices import _mix, _seed

HOUR_MS = 60 * MINUTE_MS
RATE_DECIMALS = 8          # "0.00010000"
OI_DECIMALS = 8            # "75375.61700000"
_OI_LEVEL = {"BTC": 80_000, "ETH": 900_000, "SOL": 6_000_000}     # base units
_PRICE_LEVEL = {"BTC": 60_000, "ETH": 3_000, "SOL": 150}


def funding_interval_ms(spec: MarketSpec) -> int:
    if spec.exchange == "hyperliquid":
        return HOUR_MS
    return (4 if spec.base == "SOL" else 8) * HOUR_MS


def _hash(spec: MarketSpec, kind: str, ts: int) -> int:
    return _mix(_seed(spec.exchange, spec.symbol, kind) ^ ts)


# Exchanges that report the scheduled funding time itself (Bybit's fundingRateTimestamp is
# on the hour, e.g. "1672041600000" in ccxt's bybit.fetch_funding_rate_history comment).
ON_THE_HOUR = frozenset({"bybit"})


def funding_event(spec: MarketSpec, boundary_ms: int) -> tuple[int, str]:
    """(funding time, rate string) of the funding due at ``boundary_ms``."""
    h = _hash(spec, "funding", boundary_ms)
    jitter = 0 if spec.exchange in ON_THE_HOUR else h % 7     # 0..6 ms after the hour
    units = (h >> 8) % 80_001 - 20_000                # -0.0002 .. 0.0006
    return boundary_ms + jitter, fmt_units(units, RATE_DECIMALS)


def funding_events(spec: MarketSpec, start_ms: int, end_ms: int, now_ms: int) -> list[tuple[int, str]]:
    """Realized funding (time <= now) with funding time in [start, end), ascending."""
    step = funding_interval_ms(spec)
    first = max(start_ms, spec.listed_ms) - 10
    boundary = -(-first // step) * step
    events = []
    while boundary < end_ms and boundary <= now_ms:
        ts, rate = funding_event(spec, boundary)
        if start_ms <= ts < end_ms and ts <= now_ms:
            events.append((ts, rate))
        boundary += step
    return events


def open_interest_at(spec: MarketSpec, ts_ms: int) -> tuple[str, str]:
    """(amount, value) strings of the period opening at ``ts_ms``."""
    h = _hash(spec, "oi", ts_ms // MINUTE_MS)
    level = _OI_LEVEL.get(spec.base, 100_000)
    amount_units = level * 10**OI_DECIMALS + (h % (level * 10**OI_DECIMALS // 5))
    price_cents = _PRICE_LEVEL.get(spec.base, 100) * 100 + (h >> 40) % 500
    value_units = amount_units * price_cents // 100
    return fmt_units(amount_units, OI_DECIMALS), fmt_units(value_units, OI_DECIMALS)


def open_interest_points(spec: MarketSpec, period_ms: int, start_ms: int, end_ms: int,
                         now_ms: int, shift_ms: int = 0) -> list[tuple[int, str, str]]:
    """Closed periods (open + period <= now) opening in [start, end), ascending.

    ``shift_ms`` moves the period grid back, as OKX's Hong Kong days open at 16:00 UTC.
    """
    first = max(start_ms, spec.listed_ms)
    ts = -(-(first + shift_ms) // period_ms) * period_ms - shift_ms
    points = []
    while ts < end_ms and ts + period_ms <= now_ms:
        points.append((ts, *open_interest_at(spec, ts)))
        ts += period_ms
    return points


def truth_funding(exchange: str, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> list[list]:
    """[[funding time ms, rate float]] realized by ``now_ms`` in [start, end), as ccxt parses them."""
    return [[ts, float(rate)] for ts, rate in funding_events(market(exchange, symbol), start_ms, end_ms, now_ms)]


def truth_open_interest(exchange: str, symbol: str, period_ms: int, start_ms: int, end_ms: int,
                        now_ms: int) -> list[list]:
    """[[period open ms, amount, value]] of the closed periods in [start, end), as ccxt parses them."""
    return [[ts, float(a), float(v)]
            for ts, a, v in open_interest_points(market(exchange, symbol), period_ms, start_ms, end_ms, now_ms)]
