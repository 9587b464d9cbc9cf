"""Kraken ``/0/public``."""
from __future__ import annotations

import email.utils

from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import bucket_start, iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param

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
              "/0/public/AssetPairs": "AssetPairs", "/0/public/SystemStatus": "SystemStatus",
              "/0/public/Ticker": "Ticker"}
    candle_endpoints = frozenset({"OHLC"})
    layout = RowLayout(6, 30)                  # [time(s), o, h, l, c, vwap, volume, count]
    intervals = frozenset({1, 5, 15, 30, 60, 240, 1440})
    window = 720

    def __init__(self) -> None:
        super().__init__()
        self.altnames = {v[0]: k for k, v in _KRAKEN_PAIRS.items()}

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        return {"urls": {"api": {"public": root, "private": root, "zendesk": root + "/zendesk"}}}

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
            if (wanted and not wanted & {pair_id, alt}) or pair_id in self.delisted:
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

    def get_Ticker(self, req: Request) -> Reply:
        """GET /0/public/Ticker: every pair without ``pair`` (kraken.parse_ticker: quote volume
        = v[1] (24h base volume) x p[1] (24h vwap))."""
        wanted = set(filter(None, req.query.get("pair", "").split(",")))
        result = {}
        for spec, (last, base, _) in self.tickers(req.now_ms):
            if wanted and spec.native_id not in wanted:
                continue
            result[spec.native_id] = {
                "a": [last, "1", "1.000"], "b": [last, "1", "1.000"], "c": [last, "0.1"],
                "v": [base, base], "p": [last, last], "t": [1, 1], "l": [last, last],
                "h": [last, last], "o": last}
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
        minutes = int_param(q, "interval", 1)
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
