"""What every dialect shares: the request and reply types, the base class, and the
corruptions the bad-row faults apply to a candle page.

Each dialect turns ``(endpoint, query, exchange clock)`` into the JSON the real
exchange returns, field for field as ccxt 4.5.90 parses it. The comments
cite the ccxt code path each behaviour was checked against. Faults and rate
limiting live in :mod:`simulator.server`; a dialect only knows how to
*render* them (status, body, headers) the way its exchange does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

from ..markets import Bar, MarketSpec, markets_for

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
    body: object = None              # the parsed JSON body of a POST (Hyperliquid's /info)


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


def take(n: int, bars: Iterable[Bar]) -> list[Bar]:
    return list(islice(bars, n))


def int_param(query: dict[str, str], name: str, default: int | None = None) -> int | None:
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
        self.markets = {self.market_key(spec): spec for spec in markets_for(self.name)}
        self.delisted: set[str] = set()              # market keys taken off the exchange
        self.quote_volumes: dict[str, float] = {}    # market key -> 24h quote volume override

    @staticmethod
    def market_key(spec: MarketSpec) -> str:
        """How the dialect's requests name a market: its native id, unless one id names several
        markets (Bybit's "BTCUSDT" is both a spot pair and a perpetual) and a category tells them
        apart."""
        return spec.native_id

    def listed(self) -> list[MarketSpec]:
        """The markets the exchange lists now (markets listing, tickers)."""
        return [spec for key, spec in self.markets.items() if key not in self.delisted]

    def tickers(self, now_ms: int) -> list[tuple[MarketSpec, tuple[str, str, str]]]:
        """(market, (last, 24h base volume, 24h quote volume)) for each listed market that traded."""
        from ..tickers import ticker_numbers
        found = []
        for spec in self.listed():
            numbers = ticker_numbers(spec, now_ms, self.quote_volumes.get(self.market_key(spec)))
            if numbers is not None:
                found.append((spec, numbers))
        return found

    def route(self, path: str) -> str | None:
        return self.routes.get(path)

    def route_request(self, path: str, body: object) -> str | None:
        """The endpoint of a request; APIs that name it in a POST body override this."""
        return self.route(path)

    def path_params(self, path: str) -> dict[str, str]:
        """Parameters an API keeps in the path (Coinbase's product id), added to the query."""
        return {}

    def cost(self, endpoint: str, query: dict[str, str]) -> float:
        """Rate-limit cost of one request (Binance weight; 1 elsewhere)."""
        return 1.0

    def handle(self, req: Request) -> Reply:
        try:
            return getattr(self, "get_" + req.endpoint.replace("/", "_").replace("-", "_"))(req)
        except BadRequest as exc:
            return self.bad_request(exc)

    def spec(self, key: str | None, code: str, message: str) -> MarketSpec:
        spec = self.markets.get(key or "")
        if spec is None or key in self.delisted:
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

    @classmethod
    def ccxt_config(cls, root: str) -> dict:
        """ccxt constructor overrides that send every request to ``root`` (spot only)."""
        raise NotImplementedError
