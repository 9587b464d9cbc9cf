"""Bybit API v5: spot, and USDT perpetuals (category ``linear``) with their funding rates and
open interest.

Checked against ccxt 4.5.90 (bybit.fetch_markets/fetch_spot_markets/fetch_future_markets,
fetch_time, fetch_ohlcv, parse_ohlcv, fetch_funding_rate_history,
fetch_derivatives_open_interest_history, parse_open_interest, handle_errors) and Bybit's v5 docs.
Every answer is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``; a spot pair and its
perpetual share an id ("BTCUSDT"), told apart by ``category``.

- GET /v5/market/kline: rows ``[start, o, h, l, c, volume (base), turnover (quote)]`` newest
  first; ``limit`` 1..1000, default 200. ``start``/``end`` bound the open times (the bar
  containing ``start`` included); ``end`` defaults to now, and of more matching bars than
  ``limit`` the NEWEST are served: with ``start`` alone (what ccxt sends for a ``since`` without
  ``until``) the answer is the latest bars, not those from ``start`` (ccxt issue #16551).
- GET /v5/market/funding/history: newest first, ``limit`` 1..200 (default 200); ``startTime``
  alone is refused, ``endTime`` alone or neither serves the newest before it. ccxt sends
  ``endTime = since + limit x fundingInterval`` (instruments-info ``fundingInterval``, minutes).
- GET /v5/market/open-interest: ``intervalTime`` 5min..1d, newest first, ``limit`` 1..200
  (default 50), ``nextPageCursor`` to go further back; a lone ``startTime`` does not move the
  window, which ends at ``endTime`` or now (ccxt: "the endpoint walks backwards from endTime and
  ignores a lone startTime", hence it sends ``endTime = since + limit periods``). A linear
  contract's open interest is in base currency; ccxt parses it as the amount, value None.
- Rate limit: 600 requests per 5 s per IP, then HTTP 403 (ccxt: httpExceptions 403 ->
  RateLimitExceeded).
"""
from __future__ import annotations

import base64
from itertools import takewhile

from ..derivatives import funding_events, funding_interval_ms, open_interest_at, open_interest_points
from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param, take

# Every urls["api"] entry of ccxt's bybit.describe() (all "https://api.{hostname}").
_API_KEYS = ("spot", "futures", "v2", "public", "private")
INTERVALS = {"1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240, "360": 360,
             "720": 720, "D": 1440}
OI_INTERVALS = {"5min": 5, "15min": 15, "30min": 30, "1h": 60, "4h": 240, "1d": 1440}
KLINE_DEFAULT, KLINE_MAX = 200, 1000
FUNDING_MAX = 200
OI_DEFAULT, OI_MAX = 50, 200
CATEGORIES = ("spot", "linear")


class Bybit(Dialect):
    """Bybit v5 public market endpoints (spot and linear)."""

    name = "bybit"
    routes = {"/v5/market/time": "time", "/v5/market/instruments-info": "instruments-info",
              "/v5/market/kline": "kline", "/v5/market/tickers": "tickers",
              "/v5/market/funding/history": "funding/history", "/v5/market/open-interest": "open-interest"}
    candle_endpoints = frozenset({"kline"})
    layout = RowLayout(5, 30_000)

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        # bybit.sign uses urls["api"][api[0]]; fetch_markets asks each of options.fetchMarkets.types.
        return {"urls": {"api": {k: root for k in _API_KEYS}},
                "options": {"fetchMarkets": {"types": ["spot", "linear"]}}}

    @staticmethod
    def market_key(spec: MarketSpec) -> str:
        return f"{_category(spec)}:{spec.native_id}"

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(200, {"retCode": int(exc.code), "retMsg": exc.message, "result": {},
                                  "retExtInfo": {}, "time": 0})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        # The IP limit: "403, access too frequent" (bybit httpExceptions: 403 -> RateLimitExceeded).
        return Reply(status or 403, b"access too frequent", content_type="text/plain")

    def exchange_error(self) -> Reply:
        # handle_errors: the broad match "Request timeout" -> RequestTimeout, a NetworkError.
        return Reply(200, {"retCode": 10016, "retMsg": "Request timeout, please try again later",
                           "result": {}, "retExtInfo": {}, "time": 0})

    @staticmethod
    def _ok(req: Request, result: object) -> Reply:
        return Reply(body={"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                           "time": req.now_ms})

    def _category(self, req: Request, allowed: tuple[str, ...] = CATEGORIES) -> str:
        category = req.query.get("category", "")
        if category not in allowed:
            raise BadRequest("10001", "Illegal category")
        return category

    def _market(self, req: Request, allowed: tuple[str, ...] = CATEGORIES) -> MarketSpec:
        category = self._category(req, allowed)
        symbol = req.query.get("symbol")
        if not symbol:
            raise BadRequest("10001", "params error: symbol invalid")
        # A real unknown-symbol answer (ccxt's broad match "Not supported symbols" -> BadSymbol).
        return self.spec(f"{category}:{symbol}", "10001", "Not supported symbols")

    def get_time(self, req: Request) -> Reply:
        seconds = req.now_ms // 1000
        return self._ok(req, {"timeSecond": str(seconds), "timeNano": str(req.now_ms * 1_000_000)})

    def get_instruments_info(self, req: Request) -> Reply:
        category = self._category(req)
        if req.query.get("status") == "PreLaunch":
            return self._ok(req, {"category": category, "list": [], "nextPageCursor": ""})
        specs = [s for s in self.listed() if _category(s) == category]
        shape = self._spot_instrument if category == "spot" else self._linear_instrument
        result: dict = {"category": category, "list": [shape(s) for s in specs]}
        if category == "linear":
            result["nextPageCursor"] = ""
        return self._ok(req, result)

    @staticmethod
    def _spot_instrument(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split("/")
        return {"symbol": spec.native_id, "baseCoin": base, "quoteCoin": quote, "innovation": "0",
                "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
                "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                                  "minOrderQty": "0.000048", "maxOrderQty": "71.73956243",
                                  "minOrderAmt": "1", "maxOrderAmt": "2000000"},
                "priceFilter": {"tickSize": fmt_units(1, spec.price_decimals)},
                "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"}}

    @staticmethod
    def _linear_instrument(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split(":")[0].split("/")
        tick = fmt_units(1, spec.price_decimals)
        return {"symbol": spec.native_id, "contractType": "LinearPerpetual", "status": "Trading",
                "baseCoin": base, "quoteCoin": quote, "launchTime": str(spec.listed_ms), "deliveryTime": "0",
                "deliveryFeeRate": "", "priceScale": str(spec.price_decimals),
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
                "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                                  "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                                  "minNotionalValue": "5"},
                "unifiedMarginTrade": True, "fundingInterval": funding_interval_ms(spec) // MINUTE_MS,
                "settleCoin": quote, "copyTrading": "both", "upperFundingRate": "0.005",
                "lowerFundingRate": "-0.005", "isPreListing": False, "preListingInfo": None}

    def get_tickers(self, req: Request) -> Reply:
        """GET /v5/market/tickers?category=...: volume24h in base, turnover24h in quote. A linear
        ticker also carries open interest and funding, which is how bybit.parse_ticker tells it
        from the spot pair of the same id (``openInterestValue`` present)."""
        category = self._category(req)
        rows = []
        for spec, (last, base, quote) in self.tickers(req.now_ms):
            if _category(spec) != category:
                continue
            row = {"symbol": spec.native_id, "lastPrice": last, "bid1Price": last, "bid1Size": "0",
                   "ask1Price": last, "ask1Size": "0", "prevPrice24h": last, "price24hPcnt": "0",
                   "highPrice24h": last, "lowPrice24h": last, "turnover24h": quote, "volume24h": base}
            if category == "linear":
                period = 5 * MINUTE_MS
                amount, value = open_interest_at(spec, req.now_ms // period * period - period)
                interval = funding_interval_ms(spec)
                row.update({"indexPrice": last, "markPrice": last, "openInterest": amount,
                            "openInterestValue": value, "fundingRate": "0.0001",
                            "nextFundingTime": str(req.now_ms // interval * interval + interval),
                            "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "",
                            "deliveryTime": "0"})
            rows.append(row)
        return self._ok(req, {"category": category, "list": rows})

    def get_kline(self, req: Request) -> Reply:
        """The newest ``limit`` bars opening in [bar of ``start``, ``end``], newest first."""
        spec = self._market(req)
        q = req.query
        minutes = INTERVALS.get(q.get("interval", ""))
        if minutes is None:
            raise BadRequest("10001", "Invalid period!")
        limit = min(max(int_param(q, "limit", KLINE_DEFAULT), 1), KLINE_MAX)
        start, end = int_param(q, "start"), int_param(q, "end")
        size = minutes * MINUTE_MS
        floor = -1 if start is None else start // size * size
        anchor = req.now_ms if end is None else min(end, req.now_ms)
        bars = take(limit, takewhile(lambda b: b[0] >= floor, iter_bars(spec, minutes, anchor, req.now_ms, step=-1)))
        rows = [self._row(spec, b) for b in reversed(bars)]
        return self._ok(req, {"symbol": spec.native_id, "category": _category(spec),
                              "list": self.rows(req, rows)[::-1]})

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        turnover = fmt_units(bar[5] * bar[4] // 10 ** spec.price_decimals, spec.volume_decimals)
        return [str(bar[0]), o, h, low, c, v, turnover]

    def get_funding_history(self, req: Request) -> Reply:
        """The newest ``limit`` funding events in [startTime, endTime], newest first."""
        spec = self._market(req, ("linear",))
        q = req.query
        limit = min(max(int_param(q, "limit", FUNDING_MAX), 1), FUNDING_MAX)
        start, end = int_param(q, "startTime"), int_param(q, "endTime")
        if start is not None and end is None:
            raise BadRequest("10001", "params error: startTime and endTime must be passed together "
                                      "or only endTime")
        upper = req.now_ms + 1 if end is None else min(end + 1, req.now_ms + 1)
        lower = spec.listed_ms if start is None else start
        events = funding_events(spec, lower, upper, req.now_ms)[::-1][:limit]
        return self._ok(req, {"category": "linear", "list": [
            {"symbol": spec.native_id, "fundingRate": rate, "fundingRateTimestamp": str(ts)}
            for ts, rate in events]})

    def get_open_interest(self, req: Request) -> Reply:
        """Closed periods opening in [startTime, endTime] newest first, ``limit`` a page; the
        cursor of the next page names the period it continues before."""
        spec = self._market(req, ("linear",))
        q = req.query
        minutes = OI_INTERVALS.get(q.get("intervalTime", ""))
        if minutes is None:
            raise BadRequest("10001", "params error: intervalTime invalid")
        limit = min(max(int_param(q, "limit", OI_DEFAULT), 1), OI_MAX)
        start, end = int_param(q, "startTime"), int_param(q, "endTime")
        upper = req.now_ms + 1 if end is None else min(end + 1, req.now_ms + 1)
        lower = 0 if start is None or end is None else start      # a lone startTime is ignored
        if q.get("cursor"):
            upper = min(upper, _decode_cursor(q["cursor"]))
            lower = 0 if start is None else start
        period = minutes * MINUTE_MS
        window = max(lower, upper - (limit + 2) * period)            # enough for one page
        points = open_interest_points(spec, period, window, upper, req.now_ms)[::-1][:limit]
        more = bool(points) and len(points) == limit and points[-1][0] - period >= max(lower, spec.listed_ms)
        return self._ok(req, {"symbol": spec.native_id, "category": "linear", "list": [
            {"openInterest": amount, "timestamp": str(ts)} for ts, amount, _ in points],
            "nextPageCursor": _encode_cursor(points[-1][0]) if more else ""})


def _category(spec: MarketSpec) -> str:
    return "linear" if ":" in spec.symbol else "spot"


def _encode_cursor(before_ms: int) -> str:
    return base64.urlsafe_b64encode(f"lastTs={before_ms}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().split("=", 1)[1])
    except (ValueError, IndexError):
        raise BadRequest("10001", "params error: cursor invalid") from None
