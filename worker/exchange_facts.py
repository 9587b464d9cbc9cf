"""Where an exchange differs from what ccxt's metadata says: one small table per difference.

The adapter (:mod:`worker.exchange`) reads these; nothing else in the worker names an
exchange. Each entry says why it is there, and each table has a test.
"""

from __future__ import annotations

from typing import Any

# Exchanges whose ccxt ``fetch_ohlcv`` switches to an archive endpoint for older bars, which
# serves smaller pages than ccxt's ``features`` report: (bars before now where ccxt switches,
# candles per archive page). OKX: /market/candles serves 300 a page, /market/history-candles
# 100 (OKX API v5 docs); ccxt asks history-candles for a ``since`` older than 1,439 bars.
ARCHIVE_PAGES = {"okx": (1439, 100)}
# ccxt decides on its own clock when it sends the request, a little later than we ask.
ARCHIVE_MARGIN_BARS = 10

# Where ccxt's ``features`` limit and its own ``fetch_ohlcv`` disagree, the candles a request
# really carries, by (exchange id, market type). Binance derivatives: features say 500, while
# binance.fetch_ohlcv sends up to 1,000 (Binance serves 1,500 on /fapi and /dapi klines, but
# ccxt caps the limit it sends at 1,000); paging by 500 would double a backfill's requests.
OHLCV_PAGE_OVERRIDES: dict[tuple[str, str], int] = {
    (exchange, market_type): 1000
    for exchange in ("binance", "binanceusdm", "binancecoinm") for market_type in ("swap", "future")}

# ccxt settings that pace an exchange the way it throttles, where ccxt's defaults do not; the
# configured ccxt settings win. KuCoin: ccxt's rateLimit (7.5 ms a weight unit) is its private
# spot pool, 4,000 weight / 30 s; candles (weight 3) and every public endpoint draw from the
# public pool, 2,000 weight / 30 s per IP, i.e. 15 ms a unit; 16 ms leaves room at a window's edge.
CCXT_DEFAULTS: dict[str, dict[str, Any]] = {"kucoin": {"rateLimit": 16}}

# Headers that say when a rate limit resets, for exchanges that send no Retry-After, and the
# seconds one of their units is. KuCoin: gw-ratelimit-reset, milliseconds until the pool resets.
RATE_LIMIT_RESET_HEADERS = {"gw-ratelimit-reset": 0.001}

# Answers that say the exchange itself failed, which ccxt raises as a plain ExchangeError (the
# code is in none of its tables): text in ccxt's message, per exchange. They are retried like
# an outage. Coinbase Advanced Trade: HTTP 500 {"error":"INTERNAL","error_details":"internal
# error",...}; its /v2 API: {"errors":[{"id":"internal_server_error",...}]}.
OUTAGE_ANSWERS = {"coinbase": ('"error":"INTERNAL"', '"id":"internal_server_error"')}

# Exchanges that answer a candle request with the NEWEST ``limit`` bars between ``since`` and an
# end that defaults to now, so that ``since`` alone brings the latest bars rather than those from
# ``since``: Bybit v5 /market/kline (ccxt bybit.fetch_ohlcv sends ``start`` and no ``end`` unless
# ``until`` is given; ccxt issue #16551). Their pages are bounded with ``until`` = the open of the
# page's last bar, which makes a request mean what ccxt's unified ``since``/``limit`` promise.
OHLCV_END_BOUNDED = frozenset({"bybit"})

# Where ccxt's api table keeps the OHLCV endpoint's cost (weight) per exchange.
OHLCV_ENDPOINTS = {"binance": ("public", "get", "klines"), "okx": ("public", "get", "market/candles"),
                   "kraken": ("public", "get", "OHLC"), "kucoin": ("public", "get", "market/candles"),
                   "coinbase": ("v3", "public", "get", "brokerage/market/products/{product_id}/candles"),
                   "bybit": ("public", "get", "v5/market/kline")}
