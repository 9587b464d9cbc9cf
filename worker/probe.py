"""``--mode probe``: a few requests that show what an exchange serves before it is configured.

Runs in a child process (it talks to ccxt through the adapter); it prints its own result and
exits with the command's code, so the supervisor only relays the exit code.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import exit_codes
from core.retry import Backoff
from core.timefmt import iso_utc
from core.timeframes import timeframe_ms
from worker.errors import ExchangeSetupError, ExchangeUnavailable
from worker.exchange import ExchangeClient

# The oldest instant bisection looks at: no exchange served candles before this.
FLOOR_MS = int(datetime(2010, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_BISECT_REQUESTS = 20
DEFAULT_PAGE = 1000
DEFAULT_SYMBOL, DEFAULT_TIMEFRAME = "BTC/USDT", "1m"
# A window of the last N bars moves while the probe runs: the final page may need a bar more.
CONFIRM_ATTEMPTS = 3
# Bars without trades an exchange may leave out at the start of a page that honours since.
QUIET_SLACK_BARS = 10
# A probe is interactive: one quick retry, not the collector's patient backoff.
PROBE_BACKOFF = Backoff(base=0.2, factor=2.0, cap=1.0, attempts=2)


@dataclass(frozen=True)
class ProbeRequest:
    exchange_id: str
    ccxt_settings: dict[str, Any]
    symbols: tuple[str, ...]                          # --symbol, repeatable; empty: see probe_series
    timeframe: str | None                             # --timeframe; None: each series' own, else 1m
    configured_series: tuple[tuple[str, str], ...]    # (symbol, timeframe) of the exchange's config
    as_json: bool


class Prober:
    """Counts the requests it makes so the user sees what the probe cost."""

    def __init__(self, client: ExchangeClient, symbol: str, timeframe: str, tf_ms: int) -> None:
        self.client, self.symbol, self.timeframe, self.tf_ms = client, symbol, timeframe, tf_ms
        self.requests = 0

    async def page(self, since: int | None, limit: int) -> list[list[Any]]:
        self.requests += 1
        return await self.client.fetch_ohlcv(self.symbol, self.timeframe, since, limit)

    async def rows_from(self, since: int, limit: int) -> list[list[Any]] | None:
        """A page from ``since``; None when the exchange refuses that ``since`` (too old)."""
        try:
            return await self.page(since, limit)
        except ExchangeUnavailable:
            raise
        except Exception:  # noqa: BLE001 -- an exchange refusing an old since means "not served"
            return None

    async def oldest_bar(self, floor_ms: int, newest_ms: int, limit: int) -> int | None:
        """The oldest bar the exchange serves, exactly, in at most MAX_BISECT_REQUESTS requests.

        A page that is not empty starts at the first bar served at or after its ``since`` (an
        exchange that honours ``since``, one bounded by an end, or one that only keeps a window
        and ignores ``since``), so a page from ``floor_ms`` (the listing when ccxt knows it)
        that carries bars answers at once. Otherwise the bisection keeps ``low`` (empty or
        refused) and ``high`` (served) on bar boundaries, and stops when nothing can be served
        between them: ``low`` came back empty and the smallest page served so far reaches
        ``high`` from it (an exchange bounded by an end; Bitget's and OKX's archives serve
        smaller pages than their recent candles), or they are adjacent bars (an exchange
        refusing an old ``since``: Gate's 10,000 bars). Where the oldest since moves with the
        clock (a window of the last N bars) a final page from ``high`` may be refused a bar
        later: ``high`` then moves on one bar, so the answer is the oldest bar served when the
        last request was answered.
        """
        tf, spent = self.tf_ms, self.requests
        rows = await self.rows_from(floor_ms, limit)
        if rows:
            return rows[0][0]
        low, low_empty, high, reach = floor_ms, rows is not None, newest_ms, limit
        if not low_empty:
            # Refused: step back from the newest bar by growing pages to bracket the boundary.
            back = 4 * limit * tf
            while newest_ms - back > low and self.requests - spent < MAX_BISECT_REQUESTS // 2:
                at = (newest_ms - back) // tf * tf
                rows = await self.rows_from(at, limit)
                if not rows:
                    low, low_empty = at, rows is not None
                    break
                high, back, reach = at, back * 4, min(reach, len(rows))
        while self.requests - spent < MAX_BISECT_REQUESTS - 1:
            if high - low <= tf or (low_empty and high - low <= reach * tf):
                break
            mid = (low + high) // 2 // tf * tf
            rows = await self.rows_from(mid, limit)
            if rows:
                high, reach = mid, min(reach, len(rows))
            else:
                low, low_empty = mid, rows is not None
        for _ in range(CONFIRM_ATTEMPTS):
            rows = await self.rows_from(high, limit)
            if rows is not None:
                return rows[0][0] if rows else None
            high += tf
        return None


def listing_ms(market: dict[str, Any] | None, tf_ms: int) -> int:
    """Where the search for the oldest bar starts: the listing when ccxt's market knows it
    (``created``: Binance's onboardDate, OKX's listTime, Bitget's launchTime, Gate's
    create_time), on a bar boundary; else FLOOR_MS."""
    created = (market or {}).get("created")
    return created // tf_ms * tf_ms if isinstance(created, int) and created > FLOOR_MS else FLOOR_MS


def clock_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def starts_at(rows: list[list[Any]], since: int, tf_ms: int) -> bool:
    """Whether a page honours ``since``: it starts there, or a few bars later when the first
    minutes had no trades (a window of the newest bars starts hundreds of bars later)."""
    return bool(rows) and since <= rows[0][0] < since + QUIET_SLACK_BARS * tf_ms


def probe_series(request: ProbeRequest, listed: dict[str, Any]) -> list[tuple[str, str]]:
    """The series to probe, one result each. Named ``--symbol``s at ``--timeframe`` (1m);
    without ``--symbol`` every series the config lists for the exchange (``--timeframe``
    narrowing them to one timeframe a symbol); an exchange not configured: BTC/USDT when
    listed, else ccxt's first listed market, at ``--timeframe`` (1m)."""
    if request.symbols:
        return [(symbol, request.timeframe or DEFAULT_TIMEFRAME) for symbol in dict.fromkeys(request.symbols)]
    if request.configured_series:
        if request.timeframe:
            symbols = dict.fromkeys(symbol for symbol, _ in request.configured_series)
            return [(symbol, request.timeframe) for symbol in symbols]
        return list(dict.fromkeys(request.configured_series))
    symbol = DEFAULT_SYMBOL if DEFAULT_SYMBOL in listed or not listed else next(iter(listed))
    return [(symbol, request.timeframe or DEFAULT_TIMEFRAME)]


async def probe(request: ProbeRequest, emit: Callable[[dict[str, Any]], None]) -> None:
    """Probes each series in turn and hands each result to ``emit`` as soon as it is known;
    every symbol and timeframe is checked before the first request for candles."""
    client = ExchangeClient(request.exchange_id, request.ccxt_settings, network_backoff=PROBE_BACKOFF,
                            rate_limit_backoff=PROBE_BACKOFF)
    await client.open()
    try:
        series = probe_series(request, client.markets())
        for symbol, timeframe in series:
            if client.market(symbol) is None:
                raise ValueError(f"--symbol {symbol}: not listed on {request.exchange_id}")
            if timeframe not in client.timeframes():
                raise ValueError(f"--timeframe {timeframe}: not offered by {request.exchange_id} "
                                 f"(offered: {', '.join(client.timeframes())})")
        for symbol, timeframe in series:
            emit(await probe_one(client, request.exchange_id, symbol, timeframe, clock_ms()))
    finally:
        await client.close()


async def probe_one(client: ExchangeClient, exchange_id: str, symbol: str, timeframe: str,
                    now_ms: int) -> dict[str, Any]:
    tf_ms = timeframe_ms(timeframe)
    limit = client.max_ohlcv_limit(symbol, timeframe) or DEFAULT_PAGE
    prober = Prober(client, symbol, timeframe, tf_ms)
    bucket = now_ms // tf_ms * tf_ms
    # Two pages back: within every exchange's reach (Gate refuses 10,000 bars back), and
    # past a window of the newest bars (Kraken's 720) so the page shows how much one carries.
    deep = await prober.page(bucket - 2 * limit * tf_ms, limit)
    honoured_since = bucket - 3 * limit * tf_ms
    first = await prober.page(honoured_since, limit)
    # The open bar is the one opening at the minute the request leaves, by our clock then.
    open_bucket = clock_ms() // tf_ms * tf_ms
    newest = await prober.page(None, limit)
    floor = listing_ms(client.market(symbol), tf_ms)
    # Old bars may come from an archive with smaller pages (OKX): ask no more than it serves.
    archive_limit = client.max_ohlcv_limit(symbol, timeframe, floor) or limit
    oldest = await prober.oldest_bar(floor, bucket, archive_limit)
    return {"exchange": exchange_id, "symbol": symbol, "timeframe": timeframe,
            "timeframes": client.timeframes(), "rate_limit_ms": client.rate_limit_ms(),
            "page_size": len(deep), "since_honoured": starts_at(first, honoured_since, tf_ms),
            "open_bar_included": bool(newest) and newest[-1][0] >= open_bucket,
            "oldest_bar": None if oldest is None else iso_utc(oldest), "requests": prober.requests}


# What a terminal shows, in this order: (result key, label, how the value reads).
TERMINAL_LINES = (("timeframes", "timeframes", ", ".join),
                  ("rate_limit_ms", "ccxt's pace", lambda v: f"{v:g} ms a request"),
                  ("page_size", "page size", lambda v: f"{v} bars"),
                  ("since_honoured", "since honoured", lambda v: "yes" if v else "no"),
                  ("open_bar_included", "open bar included", lambda v: "yes" if v else "no"),
                  ("oldest_bar", "oldest bar", lambda v: v or "none served"),
                  ("requests", "requests made", str))


def render(result: dict[str, Any]) -> str:
    """The result for a person: a title line, then one labelled line per fact."""
    width = max(len(label) for _, label, _ in TERMINAL_LINES)
    lines = [f"{result['exchange']} {result['symbol']} {result['timeframe']}"]
    lines += [f"  {label.ljust(width)}  {show(result[key])}" for key, label, show in TERMINAL_LINES]
    return "\n".join(lines)


def probe_main(params: dict[str, Any]) -> None:
    """Child-process entry point: prints each series' result (a JSON line, or a block on a
    terminal) as it comes, and exits with the command's code."""
    request = ProbeRequest(**params)
    printed = 0

    def emit(result: dict[str, Any]) -> None:
        nonlocal printed
        if request.as_json:
            print(json.dumps(result), flush=True)
        else:
            print(("\n" if printed else "") + render(result), flush=True)
        printed += 1

    try:
        asyncio.run(probe(request, emit))
    except ExchangeSetupError as exc:
        print(f"error: --exchange {request.exchange_id}: unknown to ccxt ({exc})", file=sys.stderr)
        sys.exit(exit_codes.USAGE)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exit_codes.USAGE)
    except Exception as exc:  # noqa: BLE001 -- network errors, exchange down: the user needs the reason
        print(f"error: {request.exchange_id} cannot be reached: {exc}", file=sys.stderr)
        sys.exit(exit_codes.UNREACHABLE)
    sys.exit(exit_codes.OK)
