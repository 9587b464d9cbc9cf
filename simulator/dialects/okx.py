"""OKX ``/api/v5``: spot, and USDT-margined perpetual swaps with their funding rates and
open interest.

Swaps checked against ccxt 4.5.90 (okx.parse_market, parse_ohlcv, fetch_funding_rate_history,
fetch_open_interest_history, handle_trading_statistics_window, parse_open_interest) and OKX's
v5 docs:
- GET /public/funding-rate-history: newest first, ``limit`` default and max 100, ``after``
  (older than) and ``before`` (newer than) exclusive cursors on fundingTime, the last 3 months
  only; ccxt reads ``realizedRate``. 10 requests / 2 s.
- GET /rubik/stat/contracts/open-interest-history: rows ``[ts, oi (contracts), oiCcy (base),
  oiUsd]`` newest first, ``begin``/``end`` exclusive, ``limit`` max 100; ccxt parses contracts
  as the amount and oiUsd as the value. Periods as candle bars: "1D" opens at 16:00 UTC (Hong
  Kong midnight) unless "utc" is appended, which ccxt does not do here. 10 requests / 2 s.
"""
from __future__ import annotations

from collections.abc import Iterator

from ..derivatives import funding_events, open_interest_points
from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import bucket_start, iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, int_param, take

FUNDING_HISTORY_DAYS = 90      # "the last 3 months"
DAY_MS = 24 * 60 * MINUTE_MS
STATS_LIMIT = 100
# Contract size of the simulated swaps, in base currency (OKX: BTC-USDT-SWAP is 0.01 BTC).
CONTRACT_VALUE = {"BTC": "0.01", "ETH": "0.1", "SOL": "1"}


class Okx(Dialect):
    """OKX ``/api/v5`` (ccxt: okx.fetch_markets_by_type/fetch_time/fetch_ohlcv)."""

    name = "okx"
    routes = {"/api/v5/market/candles": "market/candles", "/api/v5/market/tickers": "market/tickers",
              "/api/v5/market/history-candles": "market/history-candles",
              "/api/v5/public/instruments": "public/instruments",
              "/api/v5/public/time": "public/time",
              "/api/v5/public/funding-rate-history": "public/funding-rate-history",
              "/api/v5/rubik/stat/contracts/open-interest-history": "rubik/stat/contracts/open-interest-history"}
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
                "options": {"fetchMarkets": {"types": ["spot", "swap"]}}}

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
        if inst_type == "SPOT":
            return self._ok([self._instrument(s) for s in self.listed() if not _is_swap(s)])
        if inst_type == "SWAP":
            return self._ok([self._swap_instrument(s) for s in self.listed() if _is_swap(s)])
        return self._ok([])          # ccxt_config limits fetchMarkets to spot and swaps

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

    @staticmethod
    def _swap_instrument(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split(":")[0].split("/")
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "ctMult": "1",
            "ctType": "linear", "ctVal": CONTRACT_VALUE.get(base, "1"), "ctValCcy": base, "expTime": "",
            "instFamily": f"{base}-{quote}", "instId": spec.native_id, "instType": "SWAP", "lever": "100",
            "listTime": str(spec.listed_ms), "lotSz": "0.01", "maxIcebergSz": "100000000",
            "maxLmtAmt": "20000000", "maxLmtSz": "100000000", "maxMktAmt": "", "maxMktSz": "12000",
            "maxStopSz": "12000", "maxTriggerSz": "100000000", "maxTwapSz": "100000000", "minSz": "0.01",
            "optType": "", "quoteCcy": "", "ruleType": "normal", "settleCcy": quote, "state": "live",
            "stk": "", "tickSz": fmt_units(1, spec.price_decimals), "uly": f"{base}-{quote}"}

    def _swap(self, req: Request) -> MarketSpec:
        if not req.query.get("instId"):
            raise BadRequest("50014", "Parameter instId can not be empty.")
        spec = self.spec(req.query["instId"], "51001", "Instrument ID does not exist.")
        if not _is_swap(spec):
            raise BadRequest("51001", "Instrument ID does not exist.")
        return spec

    def get_public_funding_rate_history(self, req: Request) -> Reply:
        """Newest first, at most ``limit`` (100) realized rates strictly between the cursors."""
        spec = self._swap(req)
        q = req.query
        limit = min(max(int_param(q, "limit", STATS_LIMIT), 1), STATS_LIMIT)
        after, before = int_param(q, "after"), int_param(q, "before")
        kept_from = req.now_ms - FUNDING_HISTORY_DAYS * DAY_MS
        lower = kept_from if before is None else max(before + 1, kept_from)
        upper = req.now_ms + 1 if after is None else min(after, req.now_ms + 1)
        events = funding_events(spec, lower, upper, req.now_ms)[::-1][:limit]
        return self._ok([{"formulaType": "noRate", "fundingRate": rate, "fundingTime": str(ts),
                          "instId": spec.native_id, "instType": "SWAP", "method": "current_period",
                          "realizedRate": rate} for ts, rate in events])

    def get_rubik_stat_contracts_open_interest_history(self, req: Request) -> Reply:
        """Closed periods strictly between ``begin`` and ``end``, newest first, at most ``limit``."""
        spec = self._swap(req)
        q = req.query
        minutes, offset = self.bars.get(q.get("period", "5m"), (None, 0))
        if minutes is None:
            raise BadRequest("51000", "Parameter period error.")
        limit = min(max(int_param(q, "limit", STATS_LIMIT), 1), STATS_LIMIT)
        begin, end = int_param(q, "begin"), int_param(q, "end")
        period = minutes * MINUTE_MS
        lower = 0 if begin is None else begin + 1
        upper = req.now_ms + 1 if end is None else min(end, req.now_ms + 1)
        points = open_interest_points(spec, period, lower, upper, req.now_ms, offset * MINUTE_MS)
        contract = float(CONTRACT_VALUE.get(spec.base, "1"))
        rows = [[str(ts), amount, f"{float(amount) * contract:.8f}", value]
                for ts, amount, value in points[::-1][:limit]]
        return self._ok(rows)

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
        """Spot: ``[ts, o, h, l, c, vol (base), volCcy (quote), volCcyQuote, confirm]``; a swap's
        vol is in contracts and its volCcy in base currency, which okx.parse_ohlcv reads."""
        o, h, low, c, v = bar_strings(spec, bar)
        quote = f"{float(v) * float(c):.8f}"
        confirmed = "1" if bar[0] + size <= now_ms else "0"
        if _is_swap(spec):
            contracts = f"{float(v) / float(CONTRACT_VALUE.get(spec.base, '1')):.8f}"
            return [str(bar[0]), o, h, low, c, contracts, v, quote, confirmed]
        return [str(bar[0]), o, h, low, c, v, quote, quote, confirmed]


def _is_swap(spec: MarketSpec) -> bool:
    return ":" in spec.symbol
