"""Coinbase Advanced Trade (``/api/v3/brokerage``) spot, with the ``/v2`` public endpoints ccxt
loads currencies and the clock from."""
from __future__ import annotations

import re
import time
from itertools import takewhile

from ..markets import Bar, MarketSpec, bar_strings, fmt_units
from ..prices import iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout

_CANDLES = re.compile(r"^/api/v3/brokerage/market/products/([^/]+)/candles$")
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "USD": "US Dollar"}
# Advanced Trade public endpoints are throttled per IP, 10 requests a second (Coinbase docs
# "Advanced Trade API rate limits"; ccxt: rateLimit 34 ms x cost 3 for every public v3 endpoint).


class Coinbase(Dialect):
    """Coinbase Advanced Trade public REST (ccxt: coinbase.fetch_currencies/fetch_markets_v3/
    fetch_time/fetch_ohlcv).

    Advanced Trade errors are ``{"error", "error_details", "message"}``: coinbase.handle_errors
    matches ``error`` exactly (INVALID_ARGUMENT -> BadRequest; an unlisted code -> ExchangeError).
    Throttling answers HTTP 429 ``{"errors": [{"id": "rate_limit_exceeded"}]}``, which ccxt maps
    exactly to RateLimitExceeded.
    """

    name = "coinbase"
    routes = {"/api/v3/brokerage/market/products": "brokerage/market/products",
              "/api/v3/brokerage/time": "brokerage/time", "/v2/time": "v2/time",
              "/v2/currencies": "v2/currencies", "/v2/currencies/crypto": "v2/currencies/crypto",
              "/v2/exchange-rates": "v2/exchange-rates"}
    candle_endpoints = frozenset({"brokerage/market/products/candles"})
    layout = RowLayout(5, 30)        # the bad-row faults' view: [start(s), o, h, l, c, v]
    granularities = {"ONE_MINUTE": 1, "FIVE_MINUTE": 5, "FIFTEEN_MINUTE": 15, "THIRTY_MINUTE": 30,
                     "ONE_HOUR": 60, "TWO_HOUR": 120, "SIX_HOUR": 360, "ONE_DAY": 1440}
    max_candles = 350                # per request: a wider start..end span is refused

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        # urls.api has the one "rest" entry. coinbase.fetch_markets_v3 asks the public product list
        # twice (spot, then product_type=FUTURE) and, without credentials, nothing private.
        return {"urls": {"api": {"rest": root}}}

    def route(self, path: str) -> str | None:
        if _CANDLES.match(path):
            return "brokerage/market/products/candles"
        return self.routes.get(path)

    def path_params(self, path: str) -> dict[str, str]:
        found = _CANDLES.match(path)
        return {"product_id": found.group(1)} if found else {}

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(exc.status, {"error": exc.code, "error_details": exc.message, "message": exc.message})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        return Reply(status or 429, {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]})

    def exchange_error(self) -> Reply:
        # "INTERNAL" is in no ccxt table: ExchangeError after the JSON check, before the 500 mapping.
        return Reply(500, {"error": "INTERNAL", "error_details": "internal error", "message": "internal error"})

    def get_v2_time(self, req: Request) -> Reply:
        seconds = req.now_ms // 1000
        return Reply(body={"data": {"iso": _iso(seconds), "epoch": seconds}})

    def get_brokerage_time(self, req: Request) -> Reply:
        seconds = req.now_ms // 1000
        return Reply(body={"iso": _iso(seconds), "epochSeconds": str(seconds), "epochMillis": str(req.now_ms)})

    def _codes(self) -> tuple[list[str], list[str]]:
        codes = sorted({c for spec in self.markets.values() for c in spec.symbol.split("/")})
        return [c for c in codes if c == "USD"], [c for c in codes if c != "USD"]

    def get_v2_currencies(self, req: Request) -> Reply:
        fiat, _ = self._codes()
        return Reply(body={"data": [{"id": c, "name": _NAMES.get(c, c), "min_size": "0.01"} for c in fiat]})

    def get_v2_currencies_crypto(self, req: Request) -> Reply:
        _, crypto = self._codes()
        return Reply(body={"data": [{"asset_id": f"00000000-0000-0000-0000-{i:012d}", "code": c,
                                     "name": _NAMES.get(c, c), "color": "#000000", "sort_index": i,
                                     "exponent": 8, "type": "crypto", "address_regex": "^.*$"}
                                    for i, c in enumerate(crypto)]})

    def get_v2_exchange_rates(self, req: Request) -> Reply:
        fiat, crypto = self._codes()
        return Reply(body={"data": {"currency": "USD", "rates": {c: "1.0" for c in fiat + crypto}}})

    def get_brokerage_market_products(self, req: Request) -> Reply:
        kind = req.query.get("product_type", "SPOT")
        products = [self._product(s) for s in self.listed()] if kind == "SPOT" else []
        return Reply(body={"products": products, "num_products": len(products)})

    @staticmethod
    def _product(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split("/")
        tick = fmt_units(1, spec.price_decimals)
        return {"product_id": spec.native_id, "price": "1", "price_percentage_change_24h": "0",
                "volume_24h": "0", "volume_percentage_change_24h": "0", "base_increment": "0.00000001",
                "quote_increment": tick, "quote_min_size": "1", "quote_max_size": "150000000",
                "base_min_size": "0.00000001", "base_max_size": "3400", "base_name": _NAMES.get(base, base),
                "quote_name": _NAMES.get(quote, quote), "watched": False, "is_disabled": False, "new": False,
                "status": "online", "cancel_only": False, "limit_only": False, "post_only": False,
                "trading_disabled": False, "auction_mode": False, "product_type": "SPOT",
                "quote_currency_id": quote, "base_currency_id": base, "fcm_trading_session_details": None,
                "mid_market_price": "", "alias": "", "alias_to": [], "base_display_symbol": base,
                "quote_display_symbol": quote, "view_only": False, "price_increment": tick,
                "display_name": f"{base}-{quote}", "product_venue": "CBE"}

    def get_brokerage_market_products_candles(self, req: Request) -> Reply:
        """GET /market/products/{product_id}/candles: bars opening in [start, end) (seconds),
        newest first, the open one included, back to the listing; a span of more than 350
        bars is refused.

        ccxt (coinbase.fetch_ohlcv) sends start=since/1000 and end=start + min(limit, 300) bars,
        or start=its clock - 300 bars without since; it sorts the rows ascending and keeps the
        first ``limit``.
        """
        q = req.query
        spec = self.spec(q.get("product_id"), "NOT_FOUND", "ProductID is invalid")
        minutes = self.granularities.get(q.get("granularity", ""))
        if minutes is None:
            raise BadRequest("INVALID_ARGUMENT", "granularity is invalid")
        start, end = _seconds(q, "start"), _seconds(q, "end")
        if (end - start) // (minutes * 60) > self.max_candles:
            raise BadRequest("INVALID_ARGUMENT", "start and end argument is invalid - number of candles "
                             f"requested should be less than {self.max_candles}")
        start_ms, end_ms = start * 1000, end * 1000
        if end_ms <= start_ms:
            return Reply(body={"candles": []})
        bars = takewhile(lambda b: b[0] >= start_ms,
                         iter_bars(spec, minutes, min(end_ms - 1, req.now_ms), req.now_ms, step=-1))
        return Reply(body={"candles": self.rows(req, [self._row(spec, b) for b in bars])})

    def rows(self, req: Request, rows: list) -> list:
        """The bad-row faults corrupt ``[start, o, h, l, c, v]`` lists: applied here on that view."""
        if not req.mutate or not rows:
            return rows
        keys = ("start", "open", "high", "low", "close", "volume")
        return [dict(zip(keys, values)) for values in req.mutate([[row[k] for k in keys] for row in rows],
                                                                  self.layout)]

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar) -> dict:
        o, h, low, c, v = bar_strings(spec, bar)
        return {"start": str(bar[0] // 1000), "low": low, "high": h, "open": o, "close": c, "volume": v}


def _seconds(query: dict[str, str], name: str) -> int:
    raw = query.get(name)
    if not raw:
        raise BadRequest("INVALID_ARGUMENT", f"{name} is required")
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("INVALID_ARGUMENT", f"{name} is invalid") from None


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
