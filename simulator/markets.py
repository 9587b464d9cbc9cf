"""The simulated markets: identifiers, precision and listing time, and the formatting of a
bar's integer units into the decimal strings an exchange serves.

Prices and volumes are integers (ticks of ``10**-price_decimals``, units of
``10**-volume_decimals``) everywhere inside the simulator; :func:`fmt_units` is the single
formatter used both for serving and for ``truth()``, hence ccxt's ``float(str)`` parse of
a served value equals the expected value exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000

# Bar = (open_time_ms, open, high, low, close, volume_units, trade_count);
# prices in ticks of 10**-price_decimals, volume in 10**-volume_decimals.
Bar = tuple[int, int, int, int, int, int, int]


@dataclass(frozen=True)
class MarketSpec:
    """One simulated market: identifiers, precision and listing time."""

    exchange: str
    symbol: str          # ccxt unified symbol, e.g. "BTC/USDT"
    native_id: str       # exchange id, e.g. "BTCUSDT", "XXBTZUSD", "BTC-USDT"
    base: str            # unified base code, drives the shared trend
    price_decimals: int
    volume_decimals: int
    listed_ms: int
    base_volume: float   # typical base volume per minute


_LISTED = {"BTC": 1_483_228_800_000, "ETH": 1_483_228_800_000, "SOL": 1_597_104_000_000}
_VOLUME = {"BTC": 3.0, "ETH": 40.0, "SOL": 600.0}

# (exchange, unified symbol) -> (native id, price decimals)
_MARKET_TABLE: dict[tuple[str, str], tuple[str, int]] = {
    ("binance", "BTC/USDT"): ("BTCUSDT", 2),
    ("binance", "ETH/USDT"): ("ETHUSDT", 2),
    ("binance", "SOL/USDT"): ("SOLUSDT", 2),
    ("kraken", "BTC/USD"): ("XXBTZUSD", 1),
    ("kraken", "ETH/USD"): ("XETHZUSD", 2),
    ("kraken", "SOL/USD"): ("SOLUSD", 2),
    ("okx", "BTC/USDT"): ("BTC-USDT", 1),
    ("okx", "ETH/USDT"): ("ETH-USDT", 2),
    ("okx", "SOL/USDT"): ("SOL-USDT", 2),
    ("okx", "BTC/USDT:USDT"): ("BTC-USDT-SWAP", 1),
    ("okx", "ETH/USDT:USDT"): ("ETH-USDT-SWAP", 2),
    ("okx", "SOL/USDT:USDT"): ("SOL-USDT-SWAP", 3),
    ("binanceusdm", "BTC/USDT:USDT"): ("BTCUSDT", 1),
    ("binanceusdm", "ETH/USDT:USDT"): ("ETHUSDT", 2),
    ("binanceusdm", "SOL/USDT:USDT"): ("SOLUSDT", 3),
}
# Gate, Bitget and Hyperliquid spot and perpetuals. Hyperliquid names a spot pair by its universe index
# ("@142" is UBTC/USDC, which ccxt lists as BTC/USDC) and quotes 5 significant digits.
_MARKET_TABLE.update({
    ("gate", "BTC/USDT"): ("BTC_USDT", 1),
    ("gate", "ETH/USDT"): ("ETH_USDT", 2),
    ("gate", "SOL/USDT"): ("SOL_USDT", 2),
    ("bitget", "BTC/USDT"): ("BTCUSDT", 2),
    ("bitget", "ETH/USDT"): ("ETHUSDT", 2),
    ("bitget", "SOL/USDT"): ("SOLUSDT", 3),
    ("hyperliquid", "BTC/USDC"): ("@142", 0),
    ("hyperliquid", "ETH/USDC"): ("@151", 1),
    ("hyperliquid", "SOL/USDC"): ("@156", 2),
    # Hyperliquid perpetuals are named by their coin ("BTC"), which candleSnapshot and
    # fundingHistory take; ccxt lists them as BTC/USDC:USDC with the universe index as id.
    ("hyperliquid", "BTC/USDC:USDC"): ("BTC", 0),
    ("hyperliquid", "ETH/USDC:USDC"): ("ETH", 1),
    ("hyperliquid", "SOL/USDC:USDC"): ("SOL", 2),
})
# KuCoin spot (BTC-USDT, priceIncrement 0.1) and Coinbase Advanced Trade (BTC-USD, quote increment 0.01).
_MARKET_TABLE.update({
    ("kucoin", "BTC/USDT"): ("BTC-USDT", 1),
    ("kucoin", "ETH/USDT"): ("ETH-USDT", 2),
    ("kucoin", "SOL/USDT"): ("SOL-USDT", 3),
    ("coinbase", "BTC/USD"): ("BTC-USD", 2),
    ("coinbase", "ETH/USD"): ("ETH-USD", 2),
    ("coinbase", "SOL/USD"): ("SOL-USD", 2),
})
# Bybit names a spot pair and its USDT perpetual alike ("BTCUSDT"); requests tell them apart
# by ``category`` (spot, linear).
_MARKET_TABLE.update({
    ("bybit", "BTC/USDT"): ("BTCUSDT", 2),
    ("bybit", "ETH/USDT"): ("ETHUSDT", 2),
    ("bybit", "SOL/USDT"): ("SOLUSDT", 2),
    ("bybit", "BTC/USDT:USDT"): ("BTCUSDT", 1),
    ("bybit", "ETH/USDT:USDT"): ("ETHUSDT", 2),
    ("bybit", "SOL/USDT:USDT"): ("SOLUSDT", 3),
})


def _build_markets() -> dict[tuple[str, str], MarketSpec]:
    specs = {}
    for (exchange, symbol), (native_id, decimals) in _MARKET_TABLE.items():
        base = symbol.split("/")[0]
        specs[(exchange, symbol)] = MarketSpec(
            exchange, symbol, native_id, base, decimals, 8, _LISTED[base], _VOLUME[base])
    return specs


MARKETS: dict[tuple[str, str], MarketSpec] = _build_markets()


def markets_for(exchange: str) -> list[MarketSpec]:
    """All simulated markets of one exchange, in a stable order."""
    return [spec for (ex, _), spec in MARKETS.items() if ex == exchange]


def market(exchange: str, symbol: str) -> MarketSpec:
    """Look up a market by exchange and unified symbol (KeyError if unknown)."""
    return MARKETS[(exchange, symbol)]


def add_market(exchange: str, symbol: str, native_id: str, *, priced_like: str = "BTC",
               price_decimals: int = 2, listed_ms: int | None = None) -> MarketSpec:
    """List one more market on ``exchange``, priced by the model of ``priced_like`` (BTC, ETH
    or SOL) with noise of its own, so e.g. 500 series can be served from three models.

    Simulators built afterwards serve it: a dialect copies the market list when it is built.
    Kraken's pairs come with a fixed asset table, so only binance and okx take new markets.
    ``listed_ms`` is its first bar (default: that of ``priced_like``).
    """
    if exchange not in ("binance", "binanceusdm", "okx"):
        raise ValueError(f"{exchange} takes no new markets; binance, binanceusdm and okx do")
    if priced_like not in _LISTED:
        raise ValueError(f"no price model for {priced_like!r}; known: {sorted(_LISTED)}")
    if (exchange, symbol) in MARKETS:
        raise ValueError(f"{exchange} already lists {symbol}")
    spec = MarketSpec(exchange, symbol, native_id, priced_like, price_decimals, 8,
                      _LISTED[priced_like] if listed_ms is None else int(listed_ms), _VOLUME[priced_like])
    MARKETS[(exchange, symbol)] = spec
    return spec


def fmt_units(units: int, decimals: int) -> str:
    """Integer units -> fixed-point string, exactly as the dialects serve it."""
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    if decimals == 0:
        return sign + digits
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def bar_strings(spec: MarketSpec, bar: Bar) -> tuple[str, str, str, str, str]:
    """(open, high, low, close, volume) strings for a bar."""
    p = spec.price_decimals
    return (fmt_units(bar[1], p), fmt_units(bar[2], p), fmt_units(bar[3], p),
            fmt_units(bar[4], p), fmt_units(bar[5], spec.volume_decimals))
