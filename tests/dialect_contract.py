"""What the contract tests of one simulator dialect share: a frozen clock near the wall clock,
a simulator on it, ccxt clients, forward paging, and raw HTTP requests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import ccxt

from simulator import ExchangeSimulator, quiet_minutes

MIN = 60_000


class FakeClock:
    """Callable clock (epoch seconds) that only moves when told to."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    @property
    def ms(self) -> int:
        return int(self.t * 1000)


def anchor(exchange: str, *symbols: str) -> float:
    """25 s into a recent minute that, like the next one, has trades on every one of
    ``symbols``: near the wall clock (ccxt computes windows from its own clock) yet fixed."""
    minute = int(time.time() // 60) - 1
    while any(quiet_minutes(exchange, symbol, minute * MIN, (minute + 2) * MIN) for symbol in symbols):
        minute -= 1
    return minute * 60 + 25


def full_windows_since(exchange: str, symbol: str, since: int, window: int, count: int) -> int:
    """The latest start at or before ``since`` whose ``count`` windows of ``window`` ms each end
    on a minute with trades. Paging resumes at the last bar served plus one bar, so a quiet
    last minute shifts every later window and adds a request: the simulator's quiet minutes
    follow the wall clock, and a fixed start would make the page count depend on the day."""
    while any(quiet_minutes(exchange, symbol, since + k * window - MIN, since + k * window)
              for k in range(1, count + 1)):
        since -= MIN
    return since


def make(sim: ExchangeSimulator, exchange: str, **extra: object) -> ccxt.Exchange:
    return getattr(ccxt, exchange)({**sim.ccxt_config(exchange), "enableRateLimit": False, **extra})


def fetch_pages(ex: ccxt.Exchange, symbol: str, timeframe: str, since: int, until: int,
                limit: int | None) -> tuple[list[list], int]:
    """Page forward with ``since = last + duration`` like a collector would."""
    step = ex.parse_timeframe(timeframe) * 1000
    rows: list[list] = []
    pages = 0
    while since < until:
        page = ex.fetch_ohlcv(symbol, timeframe, since, limit)
        pages += 1
        if not page:
            break
        rows += [r for r in page if r[0] < until]
        since = page[-1][0] + step
    return rows, pages


def raw(sim: ExchangeSimulator, path: str, data: dict | None = None) -> tuple[int, dict, object]:
    """(status, headers, parsed JSON or text) for a raw request (a POST when ``data`` is given)."""
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(sim.base_url + path, data=body,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, headers, text = resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        status, headers, text = err.code, dict(err.headers), err.read().decode()
    try:
        return status, headers, json.loads(text)
    except ValueError:
        return status, headers, text
