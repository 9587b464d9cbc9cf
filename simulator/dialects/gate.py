"""Gate ``/api/v4`` spot."""
from __future__ import annotations

from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import bucket_start, iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param, take

# Every urls["api"] entry of ccxt's gate.describe(), so no code path leaves 127.0.0.1.
_PUBLIC = ("wallet", "futures", "margin", "delivery", "spot", "options", "sub_accounts", "earn", "unified")
_PRIVATE = ("withdrawals", "wallet", "futures", "margin", "delivery", "spot", "options", "subAccounts",
            "unified", "rebate", "earn", "account", "loan", "otc")
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "USDT": "Tether"}


class Gate(Dialect):
    """Gate API v4 spot (ccxt: gate.fetch_currencies/fetch_spot_markets/fetch_time/fetch_ohlcv).

    Errors are ``{"label": ..., "message": ...}`` with an HTTP 4xx/5xx status; gate.handle_errors
    maps the label exactly (INVALID_PARAM_VALUE -> BadRequest, TOO_MANY_REQUESTS ->
    RateLimitExceeded, SERVER_ERROR -> ExchangeNotAvailable).
    """

    name = "gate"
    routes = {"/api/v4/spot/candlesticks": "spot/candlesticks", "/api/v4/spot/time": "spot/time",
              "/api/v4/spot/currencies": "spot/currencies",
              "/api/v4/spot/currency_pairs": "spot/currency_pairs",
              "/api/v4/margin/currency_pairs": "margin/currency_pairs"}
    candle_endpoints = frozenset({"spot/candlesticks"})
    # [t(s), quote volume, close, high, low, open, base volume, closed]
    layout = RowLayout(6, 30)
    intervals = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "8h": 480, "1d": 1440}
    max_points = 1000       # per request: "Candlestick range too broad. Maximum 1000 data points ..."
    max_points_ago = 10_000  # "Candlestick too long ago. Maximum 10000 points ago are allowed"
    default_limit = 100

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        api = root + "/api/v4"
        return {"urls": {"api": {"public": {k: api for k in _PUBLIC},
                                 "private": {k: api for k in _PRIVATE}}},
                "options": {"fetchMarkets": {"types": ["spot"]}}}

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(exc.status, {"label": exc.code, "message": exc.message})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        return Reply(status or 429, {"label": "TOO_MANY_REQUESTS", "message": "Request Rate Limit Exceeded"},
                     {"X-Gate-RateLimit-Requests-Remain": "0", "X-Gate-RateLimit-Limit": "200",
                      "X-Gate-RateLimit-Reset-Timestamp": str(now_ms // 1000 + max(1, int(retry_after_s)))})

    def exchange_error(self) -> Reply:
        return Reply(500, {"label": "SERVER_ERROR", "message": "Internal server error"})

    def get_spot_time(self, req: Request) -> Reply:
        return Reply(body={"server_time": req.now_ms})

    def get_spot_currencies(self, req: Request) -> Reply:
        codes = sorted({c for spec in self.markets.values() for c in spec.symbol.split("/")})
        return Reply(body=[{"currency": c, "name": _NAMES.get(c, c), "delisted": False,
                            "withdraw_disabled": False, "withdraw_delayed": False, "deposit_disabled": False,
                            "trade_disabled": False, "fixed_rate": "", "chain": "ETH",
                            "chains": [{"name": "ETH", "addr": "", "withdraw_disabled": False,
                                        "withdraw_delayed": False, "deposit_disabled": False}]}
                           for c in codes])

    def get_spot_currency_pairs(self, req: Request) -> Reply:
        return Reply(body=[self._pair(s) for s in self.markets.values()])

    def get_margin_currency_pairs(self, req: Request) -> Reply:
        return Reply(body=[{"id": s.native_id, "base": s.symbol.split("/")[0], "quote": "USDT",
                            "leverage": 10, "min_base_amount": "0.0001", "min_quote_amount": "1",
                            "max_quote_amount": "5000000", "status": 1} for s in self.markets.values()])

    @staticmethod
    def _pair(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split("/")
        return {"id": spec.native_id, "base": base, "base_name": _NAMES.get(base, base), "quote": quote,
                "quote_name": _NAMES.get(quote, quote), "fee": "0.2", "min_base_amount": "0.00001",
                "min_quote_amount": "3", "max_quote_amount": "5000000", "amount_precision": 6,
                "precision": spec.price_decimals, "trade_status": "tradable", "sell_start": 1516406400,
                "buy_start": spec.listed_ms // 1000, "type": "normal",
                "trade_url": f"https://www.gate.com/trade/{spec.native_id}"}

    def get_spot_candlesticks(self, req: Request) -> Reply:
        """GET /spot/candlesticks: oldest first, ``from``/``to`` inclusive in seconds.

        ccxt (gate.fetch_ohlcv) sends from=since/1000 and to=min(from + 999 bars, its clock),
        or only limit (default 1000 there) without since. Gate refuses a ``from`` more than
        10,000 bars back, and a from/to span of more than 1,000 bars. The open bar is served
        with closed="false".
        """
        q = req.query
        if not q.get("currency_pair"):
            raise BadRequest("MISSING_REQUIRED_PARAM", "Missing required parameter: currency_pair")
        spec = self.spec(q["currency_pair"], "INVALID_CURRENCY_PAIR",
                         f"Invalid currency pair: {q['currency_pair']}")
        minutes = self.intervals.get(q.get("interval", "30m"))
        if minutes is None:
            raise BadRequest("INVALID_PARAM_VALUE", f"Invalid request parameter `interval` value: "
                             f"{q.get('interval')}")
        size = minutes * MINUTE_MS
        current = bucket_start(req.now_ms, minutes)
        limit, start, to = _int(q, "limit"), _int(q, "from"), _int(q, "to")
        if limit is not None and (start is not None or to is not None):
            raise BadRequest("INVALID_PARAM_VALUE", "limit is conflicted with from and to")
        if start is None and to is None:
            limit = self.default_limit if limit is None else limit
            if not 1 <= limit <= self.max_points:
                raise BadRequest("INVALID_PARAM_VALUE", f"Invalid request parameter `limit` value: {limit}")
            bars = take(limit, iter_bars(spec, minutes, req.now_ms, req.now_ms, step=-1))[::-1]
            return Reply(body=self.rows(req, [self._row(spec, b, size, req.now_ms) for b in bars]))
        to_ms = req.now_ms if to is None else to * 1000
        from_ms = to_ms - self.default_limit * size if start is None else start * 1000
        if (current - bucket_start(from_ms, minutes)) // size >= self.max_points_ago:
            raise BadRequest("INVALID_PARAM_VALUE", "Candlestick too long ago. Maximum 10000 points ago "
                             "are allowed")
        if (bucket_start(to_ms, minutes) - bucket_start(from_ms, minutes)) // size >= self.max_points:
            raise BadRequest("INVALID_PARAM_VALUE", "Candlestick range too broad. Maximum 1000 data points "
                             "are allowed per request")
        bars = list(iter_bars(spec, minutes, from_ms, req.now_ms, to_ms=to_ms))
        return Reply(body=self.rows(req, [self._row(spec, b, size, req.now_ms) for b in bars]))

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar, size: int, now_ms: int) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        quote = fmt_units(bar[5] * bar[4] // 10 ** spec.price_decimals, spec.volume_decimals)
        closed = "true" if bar[0] + size <= now_ms else "false"
        return [str(bar[0] // 1000), quote, c, h, low, o, v, closed]


def _int(query: dict[str, str], name: str) -> int | None:
    try:
        return int_param(query, name)
    except BadRequest:
        raise BadRequest("INVALID_PARAM_VALUE", f"Invalid request parameter `{name}` value: "
                         f"{query.get(name)}") from None
