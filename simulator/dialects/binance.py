"""Binance spot ``/api/v3``, and the USDⓈ-M futures API ccxt's ``binance`` uses for swaps."""
from __future__ import annotations

from dataclasses import replace

from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param, take

# Every ccxt binance urls["api"] entry is pointed at the simulator so that no
# code path can leave 127.0.0.1 (unserved ones answer 404).
_API_PATHS = {
    "public": "/api/v3", "private": "/api/v3", "v1": "/api/v1", "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3", "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1", "dapiPrivate": "/dapi/v1", "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/dapi/futures/data", "eapiPublic": "/eapi/v1", "eapiPrivate": "/eapi/v1",
    "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data", "papi": "/papi/v1", "papiV2": "/papi/v2"}
# The USDⓈ-M futures API that ccxt's ``binance`` (not only ``binanceusdm``) calls for a swap
# symbol such as BTC/USDT:USDT: the same endpoints and the same markets, hence the same data.
FUTURES_PREFIX = "fapi:"


class Binance(Dialect):
    """Binance spot ``/api/v3`` (ccxt: binance.fetch_markets/fetch_time/fetch_ohlcv)."""

    name = "binance"
    routes = {"/api/v3/klines": "klines", "/api/v3/uiKlines": "uiKlines",
              "/api/v3/exchangeInfo": "exchangeInfo", "/api/v3/time": "time",
              "/api/v3/ping": "ping", "/api/v3/ticker/24hr": "ticker/24hr"}
    candle_endpoints = frozenset({"klines", "uiKlines"})
    layout = RowLayout(5, 30_000)
    # Request weights of the real API; ccxt encodes them as cost = weight * 0.2
    # with rateLimit 50 ms ("klines": {"cost": 0.4} == weight 2).
    weights = {"klines": 2, "uiKlines": 2, "exchangeInfo": 20, "time": 1, "ping": 1,
               "ticker/24hr": 80}   # 80 without a symbol: every market
    intervals = {tf: m for tf, m in (("1m", 1), ("3m", 3), ("5m", 5), ("15m", 15), ("30m", 30),
                                     ("1h", 60), ("2h", 120), ("4h", 240), ("6h", 360),
                                     ("8h", 480), ("12h", 720), ("1d", 1440))}
    default_limit, max_limit = 500, 1000
    weight_limit = 6000

    def __init__(self) -> None:
        super().__init__()
        self.futures: Dialect | None = None
        if type(self) is Binance:  # the spot dialect also answers ccxt's binance on /fapi
            from .binanceusdm import BinanceUsdm
            self.futures = BinanceUsdm()
            self.candle_endpoints = self.candle_endpoints | {FUTURES_PREFIX + e for e in BinanceUsdm.candle_endpoints}

    def route(self, path: str) -> str | None:
        endpoint = self.routes.get(path)
        if endpoint is None and self.futures is not None:
            inner = self.futures.route(path)
            return None if inner is None else FUTURES_PREFIX + inner
        return endpoint

    def handle(self, req: Request) -> Reply:
        if self.futures is not None and req.endpoint.startswith(FUTURES_PREFIX):
            return self.futures.handle(replace(req, endpoint=req.endpoint[len(FUTURES_PREFIX):]))
        return super().handle(req)

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        # fetchCurrencies/fetchMargins would call signed sapi endpoints if
        # keys were set (binance.fetch_currencies/fetch_markets).
        return {"urls": {"api": {k: root + p for k, p in _API_PATHS.items()}},
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                            "fetchMargins": False}}

    def cost(self, endpoint: str, query: dict[str, str]) -> float:
        if self.futures is not None and endpoint.startswith(FUTURES_PREFIX):
            return self.futures.cost(endpoint[len(FUTURES_PREFIX):], query)
        return float(self.weights.get(endpoint, 1))

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(exc.status, {"code": int(exc.code), "msg": exc.message})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        # binance.handle_errors raises DDoSProtection for 418 and 429 before
        # looking at the body; Retry-After is in seconds.
        retry = max(1, int(-(-retry_after_s // 1)))
        if banned:
            until = now_ms + retry * 1000
            body = {"code": -1003, "msg": f"Way too much request weight used; IP banned until {until}. "
                    "Please use WebSocket Streams for live updates to avoid bans."}
        else:
            body = {"code": -1003, "msg": f"Too many requests; current limit of IP(127.0.0.1) is "
                    f"{self.weight_limit} requests per minute. Please use the websocket for live "
                    "updates to avoid polling the API."}
        return Reply(status or (418 if banned else 429), body, {"Retry-After": str(retry)})

    def exchange_error(self) -> Reply:
        return Reply(503, {"code": -1008, "msg": "Server is currently overloaded with other "
                           "requests. Please try again in a few minutes."})

    def get_ping(self, req: Request) -> Reply:
        return Reply(body={})

    def get_time(self, req: Request) -> Reply:
        return Reply(body={"serverTime": req.now_ms})           # binance.fetch_time

    def get_exchangeInfo(self, req: Request) -> Reply:
        wanted = req.query.get("symbol")
        symbols = [self._symbol_info(s) for s in self.listed()
                   if wanted is None or s.native_id == wanted]
        return Reply(body={
            "timezone": "UTC", "serverTime": req.now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}],
            "exchangeFilters": [], "symbols": symbols})

    def _symbol_info(self, spec: MarketSpec) -> dict:
        # Fields read by binance.parse_market; "contractType" must be absent so
        # ccxt classifies the market as spot.
        base, quote = spec.symbol.split("/")
        tick = fmt_units(1, spec.price_decimals)
        return {
            "symbol": spec.native_id, "status": "TRADING", "baseAsset": base,
            "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000",
                 "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                 "stepSize": "0.00001000"},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]}

    def get_ticker_24hr(self, req: Request) -> Reply:
        """GET /api/v3/ticker/24hr (no symbol): one FULL ticker per market (binance.parse_ticker
        reads volume and quoteVolume)."""
        rows = []
        for spec, (last, base, quote) in self.tickers(req.now_ms):
            rows.append({
                "symbol": spec.native_id, "priceChange": "0", "priceChangePercent": "0",
                "weightedAvgPrice": last, "prevClosePrice": last, "lastPrice": last, "lastQty": "0",
                "bidPrice": last, "bidQty": "0", "askPrice": last, "askQty": "0", "openPrice": last,
                "highPrice": last, "lowPrice": last, "volume": base, "quoteVolume": quote,
                "openTime": req.now_ms - 86_400_000, "closeTime": req.now_ms, "firstId": 1,
                "lastId": 1, "count": 1})
        return Reply(body=rows)

    def get_uiKlines(self, req: Request) -> Reply:
        return self.get_klines(req)

    def get_klines(self, req: Request) -> Reply:
        """GET /api/v3/klines: startTime/endTime inclusive on open time, ascending.

        ccxt (binance.fetch_ohlcv) sends startTime=since and limit=min(limit or
        500, 1000), and endTime only when params["until"] is given.
        """
        q = req.query
        if not q.get("symbol"):
            raise BadRequest("-1102", "Mandatory parameter 'symbol' was not sent, was empty/null, "
                             "or malformed.")
        spec = self.spec(q["symbol"], "-1121", "Invalid symbol.")
        minutes = self.intervals.get(q.get("interval", ""))
        if minutes is None:
            raise BadRequest("-1120", "Invalid interval.")
        limit = min(max(int_param(q, "limit", self.default_limit), 1), self.max_limit)
        start, end = int_param(q, "startTime"), int_param(q, "endTime")
        if start is not None and end is not None and start > end:
            raise BadRequest("-1023", "Start time is greater than end time.")
        if start is not None:
            bars = take(limit, iter_bars(spec, minutes, start, req.now_ms, to_ms=end))
        else:
            anchor = req.now_ms if end is None else min(end, req.now_ms)
            bars = take(limit, iter_bars(spec, minutes, anchor, req.now_ms, step=-1))[::-1]
        size = minutes * MINUTE_MS
        return Reply(body=self.rows(req, [self._row(spec, b, size) for b in bars]))

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar, size: int) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        quote = f"{float(v) * float(c):.8f}"
        taker = fmt_units(bar[5] // 2, spec.volume_decimals)
        return [bar[0], o, h, low, c, v, bar[0] + size - 1, quote, bar[6], taker,
                f"{float(taker) * float(c):.8f}", "0"]
