"""REST dialects served by the exchange simulator: Binance spot and USDⓈ-M, Kraken, OKX, Gate, Bitget,
Hyperliquid, KuCoin and Coinbase Advanced Trade."""
from __future__ import annotations

from .base import BadRequest, Dialect, Mutator, Reply, Request, RowLayout, html_error, mutate_rows
from .binance import Binance
from .binanceusdm import BinanceUsdm
from .bitget import Bitget
from .coinbase import Coinbase
from .gate import Gate
from .hyperliquid import Hyperliquid
from .kraken import Kraken
from .kucoin import Kucoin
from .okx import Okx

DIALECTS: dict[str, type[Dialect]] = {"binance": Binance, "kraken": Kraken, "okx": Okx, "binanceusdm": BinanceUsdm}
DIALECTS.update({"gate": Gate, "bitget": Bitget, "hyperliquid": Hyperliquid})
DIALECTS.update({"kucoin": Kucoin, "coinbase": Coinbase})

__all__ = ["DIALECTS", "BadRequest", "Binance", "BinanceUsdm", "Bitget", "Coinbase", "Dialect", "Gate",
           "Hyperliquid", "Kraken", "Kucoin", "Mutator", "Okx", "Reply", "Request",
           "RowLayout", "html_error", "mutate_rows"]
