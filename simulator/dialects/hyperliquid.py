"""Hyperliquid ``POST /info``: spot, and USDC-margined perpetuals with their hourly funding.

Perpetuals checked against ccxt 4.5.90 (hyperliquid.fetch_swap_markets, parse_market,
fetch_ohlcv, fetch_funding_rate_history; has["fetchOpenInterestHistory"] is False: Hyperliquid
serves the current open interest only) and Hyperliquid's info-endpoint docs:
- {"type": "metaAndAssetCtxs"}: ``[{"universe": [...]}, [ctx, ...]]``, the i-th context that of
  the i-th coin; ccxt lists coin "BTC" as BTC/USDC:USDC with id "0" (its universe index).
- candleSnapshot takes the coin name for a perpetual ("BTC"), its universe pair ("@142") for spot.
- {"type": "fundingHistory", "coin", "startTime", "endTime"?}: ascending from startTime, both
  ends inclusive, at most 500 a response ("use the last returned timestamp as the next
  startTime"); one rate an hour. Weight 20 plus one per 20 items returned.
"""
from __future__ import annotations

from ..derivatives import HOUR_MS, funding_events
from ..markets import MINUTE_MS, Bar, MarketSpec, bar_strings, fmt_units
from ..prices import bucket_start, iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout

# The simulator's spot tokens (ccxt maps "Unit Bitcoin"/UBTC to BTC through its
# spotCurrencyMapping); the token list is indexed by position, as ccxt reads it.
_TOKENS = [("USDC", None, 8, 8), ("UBTC", "Unit Bitcoin", 5, 10), ("UETH", "Unit Ethereum", 4, 9),
           ("USOL", "Unit Solana", 3, 9)]
_TOKEN_OF = {"BTC": 1, "ETH": 2, "SOL": 3}
_INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "8h": 480,
              "12h": 720, "1d": 1440}
# Info request weights (docs, "Rate limits and user limits"): 2 for these, 20 for the rest;
# candleSnapshot adds one per 60 candles it returns. 1200 weight a minute per IP.
_FUNDING_PAGE = 500         # fundingHistory items a response at most
# Perpetuals: size decimals and a mark price (ccxt derives the price precision from both).
_PERP_META = {"BTC": (5, 40, "60000"), "ETH": (4, 25, "3000.0"), "SOL": (2, 20, "150.00")}
_LIGHT = frozenset({"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState",
                    "exchangeStatus"})


class Hyperliquid(Dialect):
    """Hyperliquid's info API (ccxt: hyperliquid.fetch_currencies/fetch_spot_markets/fetch_time/
    fetch_ohlcv): every request is ``POST /info`` whose JSON body names the request ``type``.

    ccxt's throttle charges candleSnapshot 4 x 50 ms whatever it returns, while the exchange
    charges 20 + 1 per 60 candles returned: a client paced by ccxt alone meets HTTP 429.
    """

    name = "hyperliquid"
    routes = {"/info": "info"}
    candle_endpoints = frozenset({"info/candleSnapshot"})
    layout = RowLayout(5, 30_000)
    window = 5000           # only the most recent 5000 candles of a series are available

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        return {"urls": {"api": {"public": root, "private": root}},
                "options": {"fetchMarkets": {"types": ["spot", "swap"]}}}

    def route_request(self, path: str, body: object) -> str | None:
        if self.route(path) is None:
            return None
        kind = body.get("type") if isinstance(body, dict) else None
        return f"info/{kind}" if isinstance(kind, str) else "info/"

    def handle(self, req: Request) -> Reply:
        try:
            if req.endpoint == "info/":
                raise BadRequest("", "Failed to deserialize the JSON body into the target type")
            handler = getattr(self, "info_" + req.endpoint[len("info/"):], None)
            if handler is None:
                raise BadRequest("", "Failed to deserialize the JSON body into the target type: "
                                 "unknown variant")
            return handler(req)
        except BadRequest as exc:
            return self.bad_request(exc)

    def cost(self, endpoint: str, query: dict[str, str], body: object = None, now_ms: int | None = None) -> float:
        kind = endpoint[len("info/"):]
        if kind in _LIGHT:
            return 2.0
        if kind == "candleSnapshot" and isinstance(body, dict):
            return 20.0 + _expected_candles(body.get("req"), now_ms) // 60
        if kind == "fundingHistory" and isinstance(body, dict):
            return 20.0 + _expected_rates(body, now_ms) // 20
        return 20.0

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(422, exc.message.encode(), content_type="text/plain; charset=utf-8")

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        # A bare 429 (ccxt: httpExceptions["429"] -> RateLimitExceeded); no Retry-After.
        return Reply(status or 429, b"null")

    def exchange_error(self) -> Reply:
        return Reply(500, b"null")                         # -> ExchangeNotAvailable

    def info_exchangeStatus(self, req: Request) -> Reply:
        return Reply(body={"specialStatuses": None, "time": str(req.now_ms)})

    def info_spotMeta(self, req: Request) -> Reply:
        return Reply(body=self._meta())

    def info_spotMetaAndAssetCtxs(self, req: Request) -> Reply:
        ctxs = [{"prevDayPx": "1.0", "dayNtlVlm": "0.0", "markPx": "1.0", "midPx": None,
                 "circulatingSupply": "0.0", "coin": f"@{i}"} for i in range(self._last_index() + 1)]
        for spec in self._spot():
            index = int(spec.native_id[1:])
            price = fmt_units(10 ** spec.price_decimals, spec.price_decimals)
            ctxs[index] = {"prevDayPx": price, "dayNtlVlm": "1000000.0", "markPx": price, "midPx": price,
                           "circulatingSupply": "21000000.0", "coin": spec.native_id}
        return Reply(body=[self._meta(), ctxs])

    def _last_index(self) -> int:
        return max(int(spec.native_id[1:]) for spec in self._spot())

    def _spot(self) -> list[MarketSpec]:
        return [spec for spec in self.markets.values() if spec.native_id.startswith("@")]

    def _perps(self) -> list[MarketSpec]:
        return [spec for spec in self.listed() if not spec.native_id.startswith("@")]

    def info_meta(self, req: Request) -> Reply:
        return Reply(body=self._perp_meta())

    def info_metaAndAssetCtxs(self, req: Request) -> Reply:
        ctxs = []
        for spec in self._perps():
            mark = _PERP_META[spec.base][2]
            ctxs.append({"funding": "0.0000125", "openInterest": "1000.0", "prevDayPx": mark,
                         "dayNtlVlm": "1000000.0", "premium": "0.0001", "oraclePx": mark, "markPx": mark,
                         "midPx": mark, "impactPxs": [mark, mark], "dayBaseVlm": "100.0"})
        return Reply(body=[self._perp_meta(), ctxs])

    def _perp_meta(self) -> dict:
        universe = [{"szDecimals": _PERP_META[spec.base][0], "name": spec.native_id,
                     "maxLeverage": _PERP_META[spec.base][1], "marginTableId": _PERP_META[spec.base][1]}
                    for spec in self._perps()]
        return {"universe": universe, "marginTables": [], "collateralToken": 0}

    def info_fundingHistory(self, req: Request) -> Reply:
        """Realized hourly rates with time in [startTime, endTime], oldest first, 500 at most."""
        body = req.body if isinstance(req.body, dict) else {}
        for field in ("coin", "startTime"):
            if field not in body:
                raise BadRequest("", f"Failed to deserialize the JSON body into the target type: "
                                 f"missing field `{field}`")
        spec = self.markets.get(str(body["coin"]))
        if spec is None or spec.native_id.startswith("@"):
            return Reply(500, b"null")
        start = int(body["startTime"])
        end = req.now_ms if body.get("endTime") is None else min(int(body["endTime"]), req.now_ms)
        events = funding_events(spec, start, end + 1, req.now_ms)[:_FUNDING_PAGE]
        return Reply(body=[{"coin": spec.native_id, "fundingRate": rate, "premium": "0.0001", "time": ts}
                           for ts, rate in events])

    def _meta(self) -> dict:
        tokens = [{"name": name, "szDecimals": sz, "weiDecimals": wei, "index": i,
                   "tokenId": f"0x{i:032x}", "isCanonical": i == 0, "evmContract": None, "fullName": full,
                   "deployerTradingFeeShare": "0.0"}
                  for i, (name, full, sz, wei) in enumerate(_TOKENS)]
        universe = [{"tokens": [_TOKEN_OF[spec.base], 0], "name": spec.native_id,
                     "index": int(spec.native_id[1:]), "isCanonical": False}
                    for spec in self._spot()]
        return {"universe": universe, "tokens": tokens}

    def info_candleSnapshot(self, req: Request) -> Reply:
        """Candles opening in [startTime, endTime], oldest first, the open one included; only
        the most recent 5000 of a series exist, whatever startTime says.

        ccxt (hyperliquid.fetch_ohlcv) sends startTime=since and endTime=its clock, and keeps
        the first ``limit`` of the answer.
        """
        params = req.body.get("req") if isinstance(req.body, dict) else None
        if not isinstance(params, dict) or not all(k in params for k in ("coin", "interval", "startTime")):
            raise BadRequest("", "Failed to deserialize the JSON body into the target type: req")
        spec = self.markets.get(str(params["coin"]))
        minutes = _INTERVALS.get(str(params["interval"]))
        if spec is None or minutes is None:
            return Reply(500, b"null")
        size = minutes * MINUTE_MS
        oldest = bucket_start(req.now_ms, minutes) - (self.window - 1) * size
        start = max(int(params["startTime"]), oldest)
        end = int(params.get("endTime") or req.now_ms)
        bars = iter_bars(spec, minutes, start, req.now_ms, to_ms=end)
        return Reply(body=self.rows(req, [self._row(spec, b, params["interval"], size) for b in bars]))

    def rows(self, req: Request, rows: list) -> list:
        """The bad-row faults corrupt ``[t, o, h, l, c, v]`` lists: applied here on that view."""
        if not req.mutate or not rows:
            return rows
        keys = ("t", "o", "h", "l", "c", "v")
        mutated = req.mutate([[row[k] for k in keys] for row in rows], self.layout)
        return [{**rows[0], **dict(zip(keys, values))} for values in mutated]

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar, interval: str, size: int) -> dict:
        o, h, low, c, v = bar_strings(spec, bar)
        return {"t": bar[0], "T": bar[0] + size - 1, "s": spec.native_id, "i": interval, "o": o, "c": c,
                "h": h, "l": low, "v": v, "n": bar[6]}


def _expected_candles(params: object, now_ms: int | None = None) -> int:
    """How many candles a candleSnapshot request can return (for its weight)."""
    if not isinstance(params, dict):
        return 0
    minutes = _INTERVALS.get(str(params.get("interval")), 1)
    return min(Hyperliquid.window, _span_items(params, minutes * MINUTE_MS, now_ms))


def _expected_rates(body: dict, now_ms: int | None) -> int:
    """How many hourly rates a fundingHistory request can return (for its weight)."""
    return min(_FUNDING_PAGE, _span_items(body, HOUR_MS, now_ms))


def _span_items(params: dict, step_ms: int, now_ms: int | None) -> int:
    try:
        start = int(params.get("startTime") or 0)
        end = params.get("endTime") or now_ms or 0
        end = int(end) if now_ms is None else min(int(end), now_ms)
    except (TypeError, ValueError):
        return 0
    return max(0, (end - start) // step_ms + 1)
