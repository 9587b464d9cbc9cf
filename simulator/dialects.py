"""REST dialects served by the exchange simulator (binance spot, kraken, okx).

Each dialect turns ``(endpoint, query, exchange clock)`` into the JSON the real
exchange returns, field for field as ccxt 4.5.90 parses it. The comments
cite the ccxt code path each behaviour was checked against. Faults and rate
limiting live in :mod:`simulator.server`; a dialect only knows how to
*render* them (status, body, headers) the way its exchange does.
"""
from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from .prices import (
    MINUTE_MS, Bar, MarketSpec, bar_strings, bucket_start, fmt_units, iter_bars, markets_for,
)

# A candle-row mutator injected by a "bad_*" fault: (rows, layout) -> rows.
Mutator = Callable[[list[list], "RowLayout"], list[list]]


@dataclass
class Reply:
    """An HTTP answer: body is JSON-serialisable, or bytes sent verbatim."""

    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=UTF-8"


@dataclass
class Request:
    """A parsed request as a dialect sees it."""

    endpoint: str
    query: dict[str, str]
    now_ms: int                      # the exchange's clock (offset applied)
    mutate: Mutator | None = None


@dataclass(frozen=True)
class RowLayout:
    """Where a dialect's kline row keeps its fields, for the bad-row faults."""

    volume_index: int
    offgrid_shift: int               # in the row's own time unit


class BadRequest(Exception):
    """Raised by handlers; the dialect renders it as its native error reply."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def html_error(status: int, reason: str) -> Reply:
    """What a load balancer / CDN in front of an exchange answers on 5xx."""
    title = f"{status} {reason}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Reply(status, page.encode(), content_type="text/html")


def mutate_rows(kind: str, rows: list[list], layout: RowLayout) -> list[list]:
    """Corrupt one row in the middle of a kline page, like a buggy exchange would."""
    if not rows:
        return rows
    rows = [list(r) for r in rows]
    i = len(rows) // 2
    row = rows[i]
    if kind == "bad_null":
        row[4] = None                                    # close: null
    elif kind == "bad_negative_volume":
        row[layout.volume_index] = "-" + str(row[layout.volume_index])
    elif kind == "bad_high_low":
        row[2], row[3] = row[3], row[2]                  # high < low
    elif kind == "bad_offgrid":
        row[0] = type(row[0])(int(row[0]) + layout.offgrid_shift)
    elif kind == "bad_duplicate":
        rows.insert(i + 1, list(row))
    elif kind == "bad_order" and len(rows) > 1:
        j = i - 1 if i == len(rows) - 1 else i
        rows[j], rows[j + 1] = rows[j + 1], rows[j]
    return rows


def _take(n: int, bars: Iterable[Bar]) -> list[Bar]:
    return list(islice(bars, n))


def _int_param(query: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("-1100", f"Illegal characters found in parameter '{name}'; "
                         "legal range is '^[0-9]{1,20}$'.") from None


class Dialect:
    """Base class: routing table, rate-limit rendering and error rendering."""

    name = ""
    routes: dict[str, str] = {}            # sub-path -> endpoint key
    candle_endpoints: frozenset[str] = frozenset()
    layout = RowLayout(5, 30_000)

    def __init__(self) -> None:
        self.markets = {spec.native_id: spec for spec in markets_for(self.name)}

    def route(self, path: str) -> str | None:
        return self.routes.get(path)

    def cost(self, endpoint: str, query: dict[str, str]) -> float:
        """Rate-limit cost of one request (Binance weight; 1 elsewhere)."""
        return 1.0

    def handle(self, req: Request) -> Reply:
        try:
            return getattr(self, "get_" + req.endpoint.replace("/", "_").replace("-", "_"))(req)
        except BadRequest as exc:
            return self.bad_request(exc)

    def spec(self, native_id: str | None, code: str, message: str) -> MarketSpec:
        spec = self.markets.get(native_id or "")
        if spec is None:
            raise BadRequest(code, message)
        return spec

    def rows(self, req: Request, rows: list[list]) -> list[list]:
        return req.mutate(rows, self.layout) if req.mutate else rows

    # Renderers each dialect overrides -------------------------------------
    def bad_request(self, exc: BadRequest) -> Reply:
        raise NotImplementedError

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        raise NotImplementedError

    def exchange_error(self) -> Reply:
        raise NotImplementedError


# ------------------------------------------------------------------ binance --

class Binance(Dialect):
    """Binance spot ``/api/v3`` (ccxt: binance.fetch_markets/fetch_time/fetch_ohlcv)."""

    name = "binance"
    routes = {"/api/v3/klines": "klines", "/api/v3/uiKlines": "uiKlines",
              "/api/v3/exchangeInfo": "exchangeInfo", "/api/v3/time": "time",
              "/api/v3/ping": "ping"}
    candle_endpoints = frozenset({"klines", "uiKlines"})
    layout = RowLayout(5, 30_000)
    # Request weights of the real API; ccxt encodes them as cost = weight * 0.2
    # with rateLimit 50 ms ("klines": {"cost": 0.4} == weight 2).
    weights = {"klines": 2, "uiKlines": 2, "exchangeInfo": 20, "time": 1, "ping": 1}
    intervals = {tf: m for tf, m in (("1m", 1), ("3m", 3), ("5m", 5), ("15m", 15), ("30m", 30),
                                     ("1h", 60), ("2h", 120), ("4h", 240), ("6h", 360),
                                     ("8h", 480), ("12h", 720), ("1d", 1440))}
    default_limit, max_limit = 500, 1000
    weight_limit = 6000

    def cost(self, endpoint: str, query: dict[str, str]) -> float:
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
        symbols = [self._symbol_info(s) for s in self.markets.values()
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
        limit = min(max(_int_param(q, "limit", self.default_limit), 1), self.max_limit)
        start, end = _int_param(q, "startTime"), _int_param(q, "endTime")
        if start is not None and end is not None and start > end:
            raise BadRequest("-1023", "Start time is greater than end time.")
        if start is not None:
            bars = _take(limit, iter_bars(spec, minutes, start, req.now_ms, to_ms=end))
        else:
            anchor = req.now_ms if end is None else min(end, req.now_ms)
            bars = _take(limit, iter_bars(spec, minutes, anchor, req.now_ms, step=-1))[::-1]
        size = minutes * MINUTE_MS
        return Reply(body=self.rows(req, [self._row(spec, b, size) for b in bars]))

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar, size: int) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        quote = f"{float(v) * float(c):.8f}"
        taker = fmt_units(bar[5] // 2, spec.volume_decimals)
        return [bar[0], o, h, low, c, v, bar[0] + size - 1, quote, bar[6], taker,
                f"{float(taker) * float(c):.8f}", "0"]


# ------------------------------------------------------------------- kraken --

# Kraken's legacy asset codes: ccxt maps them via commonCurrencies
# (XBT/XXBT -> BTC, ZUSD -> USD) and kraken.parse_currency (X/Z prefixes).
_KRAKEN_ASSETS = {
    "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5,
             "collateral_value": 1.0, "status": "enabled"},
    "XETH": {"aclass": "currency", "altname": "ETH", "decimals": 10, "display_decimals": 5,
             "collateral_value": 1.0, "status": "enabled"},
    "SOL": {"aclass": "currency", "altname": "SOL", "decimals": 10, "display_decimals": 5,
            "collateral_value": 0.9, "status": "enabled"},
    "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2,
             "status": "enabled"},
}
_KRAKEN_PAIRS = {  # native id -> (altname, wsname, base asset id, quote asset id, ordermin)
    "XXBTZUSD": ("XBTUSD", "XBT/USD", "XXBT", "ZUSD", "0.00005"),
    "XETHZUSD": ("ETHUSD", "ETH/USD", "XETH", "ZUSD", "0.002"),
    "SOLUSD": ("SOLUSD", "SOL/USD", "SOL", "ZUSD", "0.02"),
}


class Kraken(Dialect):
    """Kraken ``/0/public`` (ccxt: kraken.fetch_currencies/fetch_markets/fetch_ohlcv).

    Errors travel in an HTTP 200 body ``{"error": [...]}``; kraken.handle_errors
    maps them via its "exceptions" table.
    """

    name = "kraken"
    routes = {"/0/public/OHLC": "OHLC", "/0/public/Time": "Time", "/0/public/Assets": "Assets",
              "/0/public/AssetPairs": "AssetPairs", "/0/public/SystemStatus": "SystemStatus"}
    candle_endpoints = frozenset({"OHLC"})
    layout = RowLayout(6, 30)                  # [time(s), o, h, l, c, vwap, volume, count]
    intervals = frozenset({1, 5, 15, 30, 60, 240, 1440})
    window = 720

    def __init__(self) -> None:
        super().__init__()
        self.altnames = {v[0]: k for k, v in _KRAKEN_PAIRS.items()}

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(200, {"error": [exc.message]})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        # Kraken reports throttling in a 200 body; ccxt maps the exact string
        # "EAPI:Rate limit exceeded" to DDoSProtection.
        return Reply(status or 200, {"error": ["EAPI:Rate limit exceeded"]})

    def exchange_error(self) -> Reply:
        return Reply(200, {"error": ["EService:Unavailable"]})   # -> ExchangeNotAvailable

    @staticmethod
    def _ok(result: object) -> Reply:
        return Reply(body={"error": [], "result": result})

    def get_Time(self, req: Request) -> Reply:
        seconds = req.now_ms // 1000
        return self._ok({"unixtime": seconds,
                         "rfc1123": email.utils.formatdate(seconds, usegmt=True)})

    def get_SystemStatus(self, req: Request) -> Reply:
        return self._ok({"status": "online", "timestamp": email.utils.formatdate(
            req.now_ms // 1000, usegmt=True)})

    def get_Assets(self, req: Request) -> Reply:
        return self._ok(dict(_KRAKEN_ASSETS))

    def get_AssetPairs(self, req: Request) -> Reply:
        wanted = set(filter(None, req.query.get("pair", "").split(",")))
        result = {}
        for pair_id, (alt, ws, base, quote, ordermin) in _KRAKEN_PAIRS.items():
            if wanted and not wanted & {pair_id, alt}:
                continue
            decimals = self.markets[pair_id].price_decimals
            result[pair_id] = {
                "altname": alt, "wsname": ws, "aclass_base": "currency", "base": base,
                "aclass_quote": "currency", "quote": quote, "lot": "unit", "cost_decimals": 5,
                "pair_decimals": decimals, "lot_decimals": 8, "lot_multiplier": 1,
                "leverage_buy": [2, 3], "leverage_sell": [2, 3],
                "fees": [[0, 0.4], [10000, 0.35], [50000, 0.24]],
                "fees_maker": [[0, 0.25], [10000, 0.2], [50000, 0.14]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": ordermin, "costmin": "0.5", "tick_size": fmt_units(1, decimals),
                "status": "online"}
        return self._ok(result)

    def get_OHLC(self, req: Request) -> Reply:
        """GET /0/public/OHLC: the 720 most recent bars, whatever ``since`` says.

        ccxt (kraken.fetch_ohlcv) sends since = since/1000 - interval*60 and
        filters by since/limit itself, so older history is unreachable.
        The last row is the open bar; "last" is the newest committed bar.
        """
        q = req.query
        pair_id = self.altnames.get(q.get("pair", ""), q.get("pair"))
        if not pair_id:
            raise BadRequest("", "EGeneral:Invalid arguments")
        spec = self.spec(pair_id, "", "EQuery:Unknown asset pair")
        minutes = _int_param(q, "interval", 1)
        if minutes not in self.intervals:
            raise BadRequest("", "EGeneral:Invalid arguments")
        size = minutes * MINUTE_MS
        current = bucket_start(req.now_ms, minutes)
        first = current - (self.window - 1) * size
        rows = [self._row(spec, b) for b in iter_bars(spec, minutes, first, req.now_ms)]
        return self._ok({pair_id: self.rows(req, rows), "last": (current - size) // 1000})

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        vwap = fmt_units((bar[2] + bar[3] + bar[4]) // 3, spec.price_decimals)
        return [bar[0] // 1000, o, h, low, c, vwap, v, bar[6]]


# ---------------------------------------------------------------------- okx --

class Okx(Dialect):
    """OKX ``/api/v5`` (ccxt: okx.fetch_markets_by_type/fetch_time/fetch_ohlcv)."""

    name = "okx"
    routes = {"/api/v5/market/candles": "market/candles",
              "/api/v5/market/history-candles": "market/history-candles",
              "/api/v5/public/instruments": "public/instruments",
              "/api/v5/public/time": "public/time"}
    candle_endpoints = frozenset({"market/candles", "market/history-candles"})
    layout = RowLayout(5, 30_000)
    # bar -> (minutes, grid offset). Bars without "utc" follow UTC+8 (a "1D"
    # bar opens 16:00 UTC); ccxt appends "utc" for >= 6h (okx.fetch_ohlcv).
    bars = {"1m": (1, 0), "3m": (3, 0), "5m": (5, 0), "15m": (15, 0), "30m": (30, 0),
            "1H": (60, 480), "2H": (120, 480), "4H": (240, 480), "6H": (360, 480),
            "12H": (720, 480), "1D": (1440, 480), "6Hutc": (360, 0), "12Hutc": (720, 0),
            "1Dutc": (1440, 0)}
    page_limits = {"market/candles": 300, "market/history-candles": 100}
    recent_window = 1440     # "market/candles" only serves the latest 1440 bars

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(200, {"code": exc.code, "msg": exc.message, "data": []})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        # okx.handle_errors maps code 50011 to RateLimitExceeded.
        return Reply(status or 429, {"msg": "Too Many Requests", "code": "50011"})

    def exchange_error(self) -> Reply:
        return Reply(200, {"code": "50026", "msg": "System error, please try again later.",
                           "data": []})

    @staticmethod
    def _ok(data: list) -> Reply:
        return Reply(body={"code": "0", "msg": "", "data": data})

    def get_public_time(self, req: Request) -> Reply:
        return self._ok([{"ts": str(req.now_ms)}])

    def get_public_instruments(self, req: Request) -> Reply:
        inst_type = req.query.get("instType")
        if not inst_type:
            raise BadRequest("50014", "Parameter instType can not be empty.")
        if inst_type != "SPOT":
            return self._ok([])          # ccxt_config limits fetchMarkets to spot
        return self._ok([self._instrument(s) for s in self.markets.values()])

    @staticmethod
    def _instrument(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split("/")
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": base, "category": "1", "ctMult": "",
            "ctType": "", "ctVal": "", "ctValCcy": "", "expTime": "", "instFamily": "",
            "instId": spec.native_id, "instType": "SPOT", "lever": "10",
            "listTime": str(spec.listed_ms), "lotSz": "0.00000001", "maxIcebergSz": "9999999999",
            "maxLmtAmt": "20000000", "maxLmtSz": "9999999999", "maxMktAmt": "1000000",
            "maxMktSz": "1000000", "maxStopSz": "1000000", "maxTriggerSz": "9999999999",
            "maxTwapSz": "9999999999", "minSz": "0.00001", "optType": "", "quoteCcy": quote,
            "ruleType": "normal", "settleCcy": "", "state": "live", "stk": "",
            "tickSz": fmt_units(1, spec.price_decimals), "uly": ""}

    def get_market_candles(self, req: Request) -> Reply:
        return self._candles(req, "market/candles")

    def get_market_history_candles(self, req: Request) -> Reply:
        return self._candles(req, "market/history-candles")

    def _candles(self, req: Request, endpoint: str) -> Reply:
        """Newest first; ``after``/``before`` are exclusive open-time cursors.

        When more bars match than ``limit``, OKX returns the NEWEST ``limit``
        of them. ccxt (okx.fetch_ohlcv) sends before=since-1 and
        after=since+limit*duration, and asks history-candles for 300 when no
        limit is given, so only the last 100 of that window come back.
        """
        q = req.query
        if not q.get("instId"):
            raise BadRequest("50014", "Parameter instId can not be empty.")
        spec = self.spec(q["instId"], "51001", "Instrument ID does not exist.")
        minutes, offset = self.bars.get(q.get("bar", "1m"), (None, 0))
        if minutes is None:
            raise BadRequest("51000", "Parameter bar error.")
        limit = min(max(_int_param(q, "limit", 100), 1), self.page_limits[endpoint])
        after, before = _int_param(q, "after"), _int_param(q, "before")
        size = minutes * MINUTE_MS
        floor = -1 if before is None else before
        if endpoint == "market/candles":
            recent = bucket_start(req.now_ms, minutes, offset) - (self.recent_window - 1) * size
            floor = max(floor, recent - 1)
        anchor = req.now_ms if after is None else min(after - 1, req.now_ms)
        newest_first = self._walk_down(spec, minutes, offset, anchor, req.now_ms, floor)
        bars = _take(limit, newest_first)
        rows = [self._row(spec, b, size, req.now_ms) for b in reversed(bars)]
        return self._ok(self.rows(req, rows)[::-1])

    @staticmethod
    def _walk_down(spec: MarketSpec, minutes: int, offset: int, anchor: int, now_ms: int,
                   floor: int) -> Iterator[Bar]:
        for bar in iter_bars(spec, minutes, anchor, now_ms, offset, step=-1):
            if bar[0] <= floor:
                return
            yield bar

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar, size: int, now_ms: int) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        quote = f"{float(v) * float(c):.8f}"
        confirmed = "1" if bar[0] + size <= now_ms else "0"
        return [str(bar[0]), o, h, low, c, v, quote, quote, confirmed]


DIALECTS: dict[str, type[Dialect]] = {"binance": Binance, "kraken": Kraken, "okx": Okx}
