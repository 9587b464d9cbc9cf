"""Bitget ``/api/v2`` spot."""
from __future__ import annotations

from itertools import takewhile

from ..markets import Bar, MarketSpec, bar_strings, fmt_units
from ..prices import iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param, take

# Every urls["api"] entry of ccxt's bitget.describe() (all "https://api.{hostname}").
_API_KEYS = ("spot", "mix", "user", "p2p", "broker", "margin", "common", "tax", "convert", "copy", "earn",
             "uta")
DAY_MS = 86_400_000


class Bitget(Dialect):
    """Bitget API v2 spot (ccxt: bitget.fetch_currencies/fetch_default_markets/fetch_time/fetch_ohlcv).

    Every answer is ``{"code", "msg", "requestTime", "data"}``; bitget.handle_errors maps
    ``code`` ("429" -> DDoSProtection, "40019" -> BadRequest) and raises on any code but "00000".
    """

    name = "bitget"
    routes = {"/api/v2/spot/market/candles": "spot/market/candles",
              "/api/v2/spot/market/history-candles": "spot/market/history-candles",
              "/api/v2/public/time": "public/time", "/api/v2/spot/public/coins": "spot/public/coins",
              "/api/v2/spot/public/symbols": "spot/public/symbols",
              "/api/v2/margin/currencies": "margin/currencies"}
    candle_endpoints = frozenset({"spot/market/candles", "spot/market/history-candles"})
    layout = RowLayout(5, 30_000)     # [ts(ms), o, h, l, c, base vol, usdt vol, quote vol]
    # Spot granularities (ccxt options.fetchOHLCV.timeframes.spot) with UTC-aligned days.
    granularities = {"1min": 1, "3min": 3, "5min": 5, "15min": 15, "30min": 30, "1h": 60, "4h": 240,
                     "6Hutc": 360, "12Hutc": 720, "1Dutc": 1440}
    # How far back the recent endpoint serves, in days (ccxt: options.fetchOHLCV.
    # maxRecentDaysPerTimeframe, "after testing, the below values are real ones").
    recent_days = {1: 30, 3: 30, 5: 30, 15: 30, 30: 30, 60: 60, 240: 240, 360: 360, 720: 720, 1440: 1440}
    recent_max, history_max, default_limit = 1000, 200, 100

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        return {"urls": {"api": {k: root for k in _API_KEYS}},
                "options": {"fetchMarkets": {"types": ["spot"]}}}

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(exc.status, {"code": exc.code, "msg": exc.message, "requestTime": 0, "data": None})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        return Reply(status or 429, {"code": "429", "msg": "Too Many Requests", "requestTime": now_ms,
                                     "data": None})

    def exchange_error(self) -> Reply:
        return Reply(500, {"code": "500", "msg": "System busy", "requestTime": 0, "data": None})

    @staticmethod
    def _ok(req: Request, data: object) -> Reply:
        return Reply(body={"code": "00000", "msg": "success", "requestTime": req.now_ms, "data": data})

    def get_public_time(self, req: Request) -> Reply:
        return self._ok(req, {"serverTime": str(req.now_ms)})

    def get_spot_public_coins(self, req: Request) -> Reply:
        codes = sorted({c for spec in self.markets.values() for c in spec.symbol.split("/")})
        chain = {"chain": "ERC20", "needTag": "false", "withdrawable": "true", "rechargeable": "true",
                 "withdrawFee": "3", "extraWithdrawFee": "0", "depositConfirm": "12", "withdrawConfirm": "64",
                 "minDepositAmount": "0.01", "minWithdrawAmount": "10", "browserUrl": "https://etherscan.io/tx/",
                 "contractAddress": "", "withdrawStep": "0", "withdrawMinScale": "8", "congestion": "normal"}
        return self._ok(req, [{"coinId": str(i + 1), "coin": c, "transfer": "true", "chains": [chain],
                               "areaCoin": "no"} for i, c in enumerate(codes)])

    def get_spot_public_symbols(self, req: Request) -> Reply:
        return self._ok(req, [self._symbol(s) for s in self.markets.values()])

    def get_margin_currencies(self, req: Request) -> Reply:
        return self._ok(req, [])                       # no margin pairs: ccxt lists spot only

    @staticmethod
    def _symbol(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split("/")
        return {"symbol": spec.native_id, "baseCoin": base, "quoteCoin": quote, "minTradeAmount": "0",
                "maxTradeAmount": "10000000000", "takerFeeRate": "0.001", "makerFeeRate": "0.001",
                "pricePrecision": str(spec.price_decimals), "quantityPrecision": "6", "quotePrecision": "8",
                "status": "online", "minTradeUSDT": "1", "buyLimitPriceRatio": "0.05",
                "sellLimitPriceRatio": "0.05", "areaSymbol": "no", "orderQuantity": "200",
                "openTime": str(spec.listed_ms), "offTime": ""}

    def _params(self, req: Request) -> tuple[MarketSpec, int, int | None]:
        q = req.query
        if not q.get("symbol"):
            raise BadRequest("40019", "Parameter symbol cannot be empty")
        spec = self.spec(q["symbol"], "40034", f"Parameter {q['symbol']} does not exist")
        minutes = self.granularities.get(q.get("granularity", ""))
        if minutes is None:
            raise BadRequest("400172", "Parameter verification failed granularity")
        return spec, minutes, int_param(q, "limit")

    def get_spot_market_candles(self, req: Request) -> Reply:
        """GET /spot/market/candles: the newest ``limit`` bars with startTime <= open < endTime.

        ccxt (bitget.fetch_ohlcv) sends startTime=since, endTime=since+limit bars (or now)
        and limit, and asks history-candles instead once since is 29 days back for 1m bars:
        this endpoint serves only the last 30 days of 1m bars (60 of 1h, ...).
        """
        spec, minutes, limit = self._params(req)
        limit = min(max(limit or self.default_limit, 1), self.recent_max)
        floor = req.now_ms - self.recent_days[minutes] * DAY_MS
        start = max(int_param(req.query, "startTime") or floor, floor)
        end = int_param(req.query, "endTime")
        anchor = req.now_ms if end is None else min(end - 1, req.now_ms)
        newest = take(limit, takewhile(lambda b: b[0] >= start,
                                       iter_bars(spec, minutes, anchor, req.now_ms, step=-1)))
        return self._ok(req, self.rows(req, [self._row(spec, b) for b in reversed(newest)]))

    def get_spot_market_history_candles(self, req: Request) -> Reply:
        """GET /spot/market/history-candles: the newest ``limit`` (at most 200) bars opening
        before endTime, back to the listing; startTime is not a parameter of this endpoint."""
        spec, minutes, limit = self._params(req)
        end = int_param(req.query, "endTime")
        if end is None:
            raise BadRequest("40019", "Parameter endTime cannot be empty")
        limit = min(max(limit or self.default_limit, 1), self.history_max)
        bars = take(limit, iter_bars(spec, minutes, min(end - 1, req.now_ms), req.now_ms, step=-1))
        return self._ok(req, self.rows(req, [self._row(spec, b) for b in reversed(bars)]))

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        quote = fmt_units(bar[5] * bar[4] // 10 ** spec.price_decimals, spec.volume_decimals)
        return [str(bar[0]), o, h, low, c, v, quote, quote]
