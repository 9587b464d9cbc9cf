"""OKX ``/api/v5``."""
from __future__ import annotations

from collections.abc import Iterator

from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import bucket_start, iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param, take


class Okx(Dialect):
    """OKX ``/api/v5`` (ccxt: okx.fetch_markets_by_type/fetch_time/fetch_ohlcv)."""

    name = "okx"
    routes = {"/api/v5/market/candles": "market/candles", "/api/v5/market/tickers": "market/tickers",
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

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        # okx.sign uses urls["api"]["rest"] (with "{hostname}" imploded).
        return {"urls": {"api": {"rest": root}, "test": {"rest": root}},
                "options": {"fetchMarkets": {"types": ["spot"]}}}

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
        return self._ok([self._instrument(s) for s in self.listed()])

    def get_market_tickers(self, req: Request) -> Reply:
        """GET /api/v5/market/tickers?instType=SPOT (okx.parse_ticker: volCcy24h is the quote
        volume of a spot market, vol24h the base volume)."""
        if not req.query.get("instType"):
            raise BadRequest("50014", "Parameter instType can not be empty.")
        if req.query["instType"] != "SPOT":
            return self._ok([])
        return self._ok([{
            "instType": "SPOT", "instId": spec.native_id, "last": last, "lastSz": "0", "askPx": last,
            "askSz": "0", "bidPx": last, "bidSz": "0", "open24h": last, "high24h": last, "low24h": last,
            "volCcy24h": quote, "vol24h": base, "ts": str(req.now_ms), "sodUtc0": last, "sodUtc8": last}
            for spec, (last, base, quote) in self.tickers(req.now_ms)])

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
        limit = min(max(int_param(q, "limit", 100), 1), self.page_limits[endpoint])
        after, before = int_param(q, "after"), int_param(q, "before")
        size = minutes * MINUTE_MS
        floor = -1 if before is None else before
        if endpoint == "market/candles":
            recent = bucket_start(req.now_ms, minutes, offset) - (self.recent_window - 1) * size
            floor = max(floor, recent - 1)
        anchor = req.now_ms if after is None else min(after - 1, req.now_ms)
        newest_first = self._walk_down(spec, minutes, offset, anchor, req.now_ms, floor)
        bars = take(limit, newest_first)
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
