"""The exchange simulator: Binance, Kraken and OKX REST dialects for the real ccxt, on
127.0.0.1 only, with deterministic prices, a ``truth()`` oracle, rate limits and faults.

The offline demo, the benchmark and the tests use it through the names below.
"""

from .prices import quiet_minutes, served_bar, truth
from .server import EXCHANGES, FAULT_KINDS, ExchangeSimulator, RateLimitConfig, RequestRecord

__all__ = ["EXCHANGES", "FAULT_KINDS", "ExchangeSimulator", "RateLimitConfig", "RequestRecord",
           "quiet_minutes", "served_bar", "truth"]
