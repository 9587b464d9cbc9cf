"""KuCoin ``/api`` spot."""
from __future__ import annotations

from itertools import takewhile

from ..markets import Bar, MarketSpec, bar_strings, fmt_units
from ..prices import iter_bars
from .base import BadRequest, Dialect, Reply, Request, RowLayout, take

# Every urls["api"] entry of ccxt's kucoin.describe(), so no code path leaves 127.0.0.1.
_API_KEYS = ("public", "private", "futuresPrivate", "futuresPublic", "webExchange", "broker", "earn", "uta",
             "utaV2", "utaPrivate")
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "USDT": "Tether"}
# Request weights from the public pool (KuCoin docs "Get Klines" 3, "Get All Symbols" 4, ...), the
# same costs ccxt's api table gives these endpoints.
_WEIGHTS = {"market/candles": 3.0, "symbols": 4.0, "currencies": 3.0, "timestamp": 3.0}
BAD_PARAMS = "400100"


class Kucoin(Dialect):
    """KuCoin spot REST (ccxt: kucoin.fetch_currencies/fetch_markets/fetch_time/fetch_spot_ohlcv).

    Every answer is ``{"code", "data"}`` (``"msg"`` on errors); kucoin.handle_errors matches
    ``msg`` then ``code`` exactly ("400100" -> BadRequest, "429000" -> RateLimitExceeded,
    "500000" -> ExchangeNotAvailable) and raises ExchangeError on any code but "200000".
    """

    name = "kucoin"
    routes = {"/api/v1/market/candles": "market/candles", "/api/v1/timestamp": "timestamp",
              "/api/v2/symbols": "symbols", "/api/v3/currencies": "currencies"}
    candle_endpoints = frozenset({"market/candles"})
    # [t(s), open, close, high, low, base volume, quote volume]: open before close, high after.
    layout = RowLayout(5, 30)
    types = {"1min": 1, "3min": 3, "5min": 5, "15min": 15, "30min": 30, "1hour": 60, "2hour": 120,
             "4hour": 240, "6hour": 360, "8hour": 480, "12hour": 720, "1day": 1440}
    max_points = 1500        # "For each query, the system would return at most 1500 pieces of data"

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        # kucoin.fetch_markets asks symbols, allTickers (for fees) and every contract list by
        # default: spot only, and no tickers, leaves the one symbols request.
        return {"urls": {"api": {k: root for k in _API_KEYS}},
                "options": {"fetchMarkets": {"types": ["spot"], "fetchTickersFees": False}}}

    def cost(self, endpoint: str, query: dict[str, str], body: object = None) -> float:
        return _WEIGHTS.get(endpoint, 1.0)

    def bad_request(self, exc: BadRequest) -> Reply:
        return Reply(exc.status, {"code": exc.code, "msg": exc.message})

    def rate_limited(self, retry_after_s: float, now_ms: int, banned: bool = False,
                     status: int | None = None) -> Reply:
        # The pool resets at the end of its 30 s window: gw-ratelimit-reset is in milliseconds.
        return Reply(status or 429, {"code": "429000", "msg": "Too Many Requests"},
                     {"gw-ratelimit-limit": "2000", "gw-ratelimit-remaining": "0",
                      "gw-ratelimit-reset": str(max(1, int(retry_after_s * 1000)))})

    def exchange_error(self) -> Reply:
        return Reply(500, {"code": "500000", "msg": "Internal Server Error"})

    @staticmethod
    def _ok(data: object) -> Reply:
        return Reply(body={"code": "200000", "data": data})

    def get_timestamp(self, req: Request) -> Reply:
        return Reply(body={"code": "200000", "msg": "success", "data": req.now_ms})

    def get_currencies(self, req: Request) -> Reply:
        codes = sorted({c for spec in self.markets.values() for c in spec.symbol.split("/")})
        return self._ok([{"currency": c, "name": c, "fullName": _NAMES.get(c, c), "precision": 8,
                          "confirms": None, "contractAddress": None, "isMarginEnabled": True,
                          "isDebitEnabled": True,
                          "chains": [{"chainName": "ERC20", "chainId": "eth", "withdrawalMinSize": "0.001",
                                      "depositMinSize": "0.0001", "withdrawFeeRate": "0",
                                      "withdrawalMinFee": "0.0005", "isWithdrawEnabled": True,
                                      "isDepositEnabled": True, "confirms": 12, "preConfirms": 12,
                                      "contractAddress": "", "withdrawPrecision": 8, "maxWithdraw": None,
                                      "maxDeposit": None, "needTag": False}]}
                         for c in codes])

    def get_symbols(self, req: Request) -> Reply:
        return self._ok([self._symbol(s) for s in self.listed()])

    @staticmethod
    def _symbol(spec: MarketSpec) -> dict:
        base, quote = spec.symbol.split("/")
        return {"symbol": spec.native_id, "name": spec.native_id, "baseCurrency": base, "quoteCurrency": quote,
                "feeCurrency": quote, "market": "USDS", "baseMinSize": "0.00001", "quoteMinSize": "0.1",
                "baseMaxSize": "10000000000", "quoteMaxSize": "99999999", "baseIncrement": "0.00000001",
                "quoteIncrement": "0.000001", "priceIncrement": fmt_units(1, spec.price_decimals),
                "priceLimitRate": "0.1", "minFunds": "0.1", "isMarginEnabled": True, "enableTrading": True,
                "feeCategory": 1, "makerFeeCoefficient": "1.00", "takerFeeCoefficient": "1.00", "st": False}

    def get_market_candles(self, req: Request) -> Reply:
        """GET /api/v1/market/candles: bars opening in [startAt, endAt) (seconds), newest first,
        the open one included, at most 1500 (the newest of the window); back to the listing.

        ccxt (kucoin.fetch_spot_ohlcv) sends startAt=since/1000 and endAt=since/1000 + limit
        bars (limit defaulting to 1500), or endAt=its clock without since; it sorts the rows
        ascending. An unset or zero startAt/endAt means the epoch/now.
        """
        q = req.query
        spec = self.spec(q.get("symbol"), BAD_PARAMS, "This pair is not provided at present")
        minutes = self.types.get(q.get("type", ""))
        if minutes is None:
            raise BadRequest(BAD_PARAMS, "Unsupported type")
        start_s, end_s = _seconds(q, "startAt"), _seconds(q, "endAt")
        start_ms = start_s * 1000
        end_ms = end_s * 1000 if end_s else req.now_ms + 1
        if end_ms <= start_ms:
            return self._ok([])
        anchor = min(end_ms - 1, req.now_ms)
        newest = take(self.max_points, takewhile(lambda b: b[0] >= start_ms,
                                                 iter_bars(spec, minutes, anchor, req.now_ms, step=-1)))
        return self._ok(self.rows(req, [self._row(spec, b) for b in newest]))

    @staticmethod
    def _row(spec: MarketSpec, bar: Bar) -> list:
        o, h, low, c, v = bar_strings(spec, bar)
        quote = fmt_units(bar[5] * bar[4] // 10 ** spec.price_decimals, spec.volume_decimals)
        return [str(bar[0] // 1000), o, c, h, low, v, quote]


def _seconds(query: dict[str, str], name: str) -> int:
    raw = query.get(name) or "0"
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(BAD_PARAMS, f"{name} invalid") from None
