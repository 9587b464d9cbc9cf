"""REST dialects served by the exchange simulator, one module per exchange."""
from __future__ import annotations

from .base import BadRequest, Dialect, Mutator, Reply, Request, RowLayout, html_error, mutate_rows
from .binance import Binance
from .binanceusdm import BinanceUsdm
from .bitget import Bitget
from .bybit import Bybit
from .coinbase import Coinbase
from .gate import Gate
from .hyperliquid import Hyperliquid
from .kraken import Kraken
from .kucoin import Kucoin
from .okx import Okx

DIALECTS: dict[str, type[Dialect]] = {"binance": Binance, "kraken": Kraken, "okx": Okx, "binanceusdm": BinanceUsdm}
DIALECTS.update({"gate": Gate, "bitget": Bitget, "hyperliquid": Hyperliquid})
DIALECTS.update({"kucoin": Kucoin, "coinbase": Coinbase, "bybit": Bybit})

__all__ = ["DIALECTS", "BadRequest", "Binance", "BinanceUsdm", "Bitget", "Bybit", "Coinbase", "Dialect",
           "Gate", "Hyperliquid", "Kraken", "Kucoin", "Mutator", "Okx", "Reply", "Request",
           "RowLayout", "html_error", "mutate_rows"]
