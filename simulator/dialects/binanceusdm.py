"""Binance USDⓈ-M futures ``/fapi/v1`` and ``/futures/data`` (ccxt: binanceusdm).

Checked against ccxt 4.5.90 (binance.fetch_markets/parse_market for linear markets,
fetch_ohlcv, fetch_funding_rate_history, parse_funding_rate_history,
fetch_open_interest_history, parse_open_interest) and Binance's USDⓈ-M docs:
- GET /fapi/v1/klines: limit default 500, max 1500; weight by limit 1/2/5/10.
- GET /fapi/v1/fundingRate: limit default 100, max 1000; ascending from startTime; without
  startTime/endTime the most recent ``limit``; its own limit of 500 requests per 5 minutes.
- GET /futures/data/openInterestHist: periods 5m..1d, limit default 30, max 500, only the
  latest 30 days; its own limit of 1000 requests per 5 minutes.
"""
from __future__ import annotations

from ..derivatives import HOUR_MS, funding_events, open_interest_points
from ..markets import MINUTE_MS, MarketSpec
from .base import BadRequest, Reply, Request, int_param, take
from .binance import Binance

DAY_MS = 24 * HOUR_MS
OPEN_INTEREST_DAYS = 30
OI_PERIODS = {"5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360, "12h": 720, "1d": 1440}


class BinanceUsdm(Binance):
    name = "binanceusdm"
    routes = {"/fapi/v1/klines": "klines", "/fapi/v1/exchangeInfo": "exchangeInfo",
              "/fapi/v1/time": "time", "/fapi/v1/ping": "ping",
              "/fapi/v1/fundingRate": "fundingRate", "/futures/data/openInterestHist": "openInterestHist"}
    candle_endpoints = frozenset({"klines"})
    weights = {"exchangeInfo": 1, "time": 1, "ping": 1, "fundingRate": 1, "openInterestHist": 0}
    default_limit, max_limit = 500, 1500
    weight_limit = 2400
    funding_default_limit, funding_max_limit = 100, 1000
    oi_default_limit, oi_max_limit = 30, 500

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        config = super().ccxt_config(root)
        config["urls"]["api"]["fapiData"] = root + "/futures/data"
        config["options"]["fetchMarkets"] = {"types": ["linear"]}
        return config

    def cost(self, endpoint: str, query: dict[str, str]) -> float:
        if endpoint == "klines":
            limit = int(query.get("limit") or self.default_limit)
            return float(next(w for cap, w in ((99, 1), (499, 2), (1000, 5), (10**9, 10)) if limit <= cap))
        return float(self.weights.get(endpoint, 1))

    def get_exchangeInfo(self, req: Request) -> Reply:
        reply = super().get_exchangeInfo(req)
        reply.body["rateLimits"] = [  # type: ignore[index]
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}]
        return reply

    def _symbol_info(self, spec: MarketSpec) -> dict:
        base, rest = spec.symbol.split("/")
        quote = rest.split(":")[0]
        tick = "0." + "0" * (spec.price_decimals - 1) + "1" if spec.price_decimals else "1"
        return {
            "symbol": spec.native_id, "pair": spec.native_id, "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "onboardDate": spec.listed_ms, "status": "TRADING",
            "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": base,
            "quoteAsset": quote, "marginAsset": quote, "pricePrecision": spec.price_decimals,
            "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
            "underlyingType": "COIN", "underlyingSubType": [], "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": "100"}],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]}

    def get_klines(self, req: Request) -> Reply:
        return super().get_klines(req)

    def _market(self, req: Request) -> MarketSpec:
        if not req.query.get("symbol"):
            raise BadRequest("-1102", "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return self.spec(req.query["symbol"], "-1121", "Invalid symbol.")

    def get_fundingRate(self, req: Request) -> Reply:
        """Ascending; from startTime when given, else the most recent ``limit``."""
        spec = self._market(req)
        q = req.query
        limit = min(max(int_param(q, "limit", self.funding_default_limit), 1), self.funding_max_limit)
        start, end = int_param(q, "startTime"), int_param(q, "endTime")
        upper = req.now_ms + 1 if end is None else min(end + 1, req.now_ms + 1)
        if start is None:
            events = funding_events(spec, upper - 366 * DAY_MS, upper, req.now_ms)[-limit:]
        else:
            events = take(limit, iter(funding_events(spec, start, upper, req.now_ms)))
        return Reply(body=[{"symbol": spec.native_id, "fundingTime": ts, "fundingRate": rate,
                            "markPrice": ""} for ts, rate in events])

    def get_openInterestHist(self, req: Request) -> Reply:
        """Closed periods of the last 30 days, ascending, at most ``limit``."""
        spec = self._market(req)
        q = req.query
        minutes = OI_PERIODS.get(q.get("period", ""))
        if minutes is None:
            raise BadRequest("-1130", "Data sent for parameter 'period' is not valid.")
        limit = min(max(int_param(q, "limit", self.oi_default_limit), 1), self.oi_max_limit)
        start, end = int_param(q, "startTime"), int_param(q, "endTime")
        period = minutes * MINUTE_MS
        kept_from = req.now_ms - OPEN_INTEREST_DAYS * DAY_MS
        upper = req.now_ms + 1 if end is None else min(end + 1, req.now_ms + 1)
        lower = kept_from if start is None else max(start, kept_from)
        points = open_interest_points(spec, period, lower, upper, req.now_ms)
        points = points[:limit] if start is not None else points[-limit:]
        return Reply(body=[{"symbol": spec.native_id, "sumOpenInterest": amount,
                            "sumOpenInterestValue": value, "timestamp": ts} for ts, amount, value in points])



