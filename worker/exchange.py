"""The exchange adapter: the only module that talks to ccxt.

It uses ``ccxt.async_support`` so one worker can keep several requests to its exchange in
flight while ccxt's throttler (``enableRateLimit``) still paces them to the exchange's limit.
ccxt's exceptions are translated here into the worker's own (``worker.errors``), after the
retries the resilience policy allows.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable

import ccxt
import ccxt.async_support as ccxt_async

from core.retry import (
    MAX_RETRY_AFTER_SECONDS,
    NETWORK_BACKOFF,
    RATE_LIMIT_BACKOFF,
    Backoff,
    parse_retry_after,
)
from core.timeframes import has_fixed_length, timeframe_ms
from worker import ccxt_throttler, ohlcv_fast
from worker.errors import (
    ExchangeRejected,
    ExchangeSetupError,
    ExchangeUnavailable,
    RateLimited,
    UnsupportedSeries,
)
from worker.exchange_facts import (
    ARCHIVE_MARGIN_BARS,
    ARCHIVE_PAGES,
    CCXT_DEFAULTS,
    OHLCV_END_BOUNDED,
    OHLCV_ENDPOINTS,
    OHLCV_PAGE_OVERRIDES,
    OUTAGE_ANSWERS,
    RATE_LIMIT_RESET_HEADERS,
)
from worker.request_meter import RequestMeter

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
ExchangeFactory = Callable[[dict[str, Any]], Any]

# How often the exchange's clock is sampled again; drift between two clocks is slow.
CLOCK_REFRESH_SECONDS = 600.0

def translate(exc: Exception) -> Exception:
    """Map a ccxt exception onto the worker's hierarchy (callers ``raise ... from exc``)."""
    text = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return RateLimited(text)
    if isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse)):
        return ExchangeUnavailable(text)
    if isinstance(exc, ccxt.BadSymbol):
        return UnsupportedSeries(text)
    return ExchangeRejected(text)


def default_factory(exchange_id: str) -> ExchangeFactory:
    def build(settings: dict[str, Any]) -> Any:
        exchange = getattr(ccxt_async, exchange_id)(settings)
        ohlcv_fast.install(exchange)  # ccxt's per-row parse is most of a backfill's CPU
        ccxt_throttler.install(exchange)  # ccxt's bucket wakes every 1 ms while requests wait
        return exchange
    return build


class ExchangeClient:
    """One exchange, its markets, its clock offset, and retried OHLCV requests."""

    def __init__(
        self,
        exchange_id: str,
        ccxt_settings: dict[str, Any] | None = None,
        *,
        factory: ExchangeFactory | None = None,
        max_concurrent_requests: int = 8,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        network_backoff: Backoff = NETWORK_BACKOFF,
        rate_limit_backoff: Backoff = RATE_LIMIT_BACKOFF,
    ) -> None:
        self.exchange_id = exchange_id
        self._settings = {**CCXT_DEFAULTS.get(exchange_id, {}), **(ccxt_settings or {}), "enableRateLimit": True}
        self._factory = factory or default_factory(exchange_id)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._network_backoff = network_backoff
        self._rate_limit_backoff = rate_limit_backoff
        self._max_concurrent = max_concurrent_requests
        self._slots: asyncio.Semaphore | None = None
        self._exchange: Any = None
        self._clock_offset_ms = 0
        self._clock_sampled_at: float | None = None
        self._aborted: asyncio.Event | None = None
        self._cooldown_until = 0.0  # on our clock: no request before this after a 429
        self._clock_sample: asyncio.Future | None = None
        self.requests = RequestMeter()  # every HTTP request: outcome, latency, 429/418

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Build the ccxt exchange and load its markets (retried like any request)."""
        # The semaphore binds to the running loop, so it is made here rather than in __init__.
        self._slots = asyncio.Semaphore(self._max_concurrent)
        self._aborted = asyncio.Event()
        try:
            self._exchange = self._factory(dict(self._settings))
        except Exception as exc:  # ccxt raises plain Python errors for bad constructor settings
            raise ExchangeSetupError(f"cannot build ccxt exchange {self.exchange_id!r}: {exc}") from exc
        if hasattr(self._exchange, "fetch"):
            self.requests.instrument(self._exchange)  # inside the cooldown: latency of the request alone
        self._hold_requests_during_cooldown()
        await self._call("load_markets")

    def _hold_requests_during_cooldown(self) -> None:
        """Make every HTTP request wait out a 429's cooldown right before it is sent.

        Checking only before a call is not enough: calls already queued in ccxt's throttler
        when the 429 arrives would still go out, and Binance bans (418) a client that keeps
        sending. ccxt sends every request through ``fetch``, after its throttle.
        """
        send = self._exchange.fetch

        async def send_after_cooldown(*args: Any, **kwargs: Any) -> Any:
            await self._respect_cooldown()
            return await send(*args, **kwargs)
        self._exchange.fetch = send_after_cooldown

    def abort_retries(self) -> None:
        """Stop waiting to retry: on shutdown a failing request fails now (call in the loop)."""
        if self._aborted is not None:
            self._aborted.set()

    async def close(self) -> None:
        """Close the HTTP session; an unclosed aiohttp session leaks sockets over months."""
        if self._exchange is not None:
            try:
                await self._exchange.close()
            except Exception:  # closing must never be the reason a worker dies
                log.debug("closing the exchange session failed", exc_info=True,
                          extra={"event": "exchange_close_error"})

    # -- what the exchange offers ----------------------------------------------------------

    def unsupported_reason(self, symbol: str, timeframe: str) -> str | None:
        """Why this series cannot be collected here, or None if it can."""
        ex = self._exchange
        if not ex.has.get("fetchOHLCV"):
            return f"{self.exchange_id} does not offer OHLCV data through ccxt"
        if symbol not in (ex.markets or {}):
            return f"{self.exchange_id} does not list symbol {symbol}"
        if ex.timeframes and timeframe not in ex.timeframes:
            offered = ", ".join(ex.timeframes)
            return f"{self.exchange_id} does not offer timeframe {timeframe} (it offers {offered})"
        return None

    def max_ohlcv_limit(self, symbol: str, timeframe: str | None = None,
                        since_ms: int | None = None) -> int | None:
        """Candles per request the exchange serves at most from ``since_ms``.

        ccxt's ``features`` give the page size, except where ccxt's own code sends another
        (``OHLCV_PAGE_OVERRIDES``) or the exchange serves older bars from an archive endpoint
        with smaller pages (``ARCHIVE_PAGES``).
        """
        limit = self._ohlcv_page_override(symbol) or self._features_ohlcv_limit(symbol)
        archive = ARCHIVE_PAGES.get(self.exchange_id)
        if archive is None or timeframe is None or since_ms is None:
            return limit
        bars_back, archive_limit = archive
        border = self._clock() * 1000 - (bars_back - ARCHIVE_MARGIN_BARS) * timeframe_ms(timeframe)
        if since_ms < border:
            return min(limit or archive_limit, archive_limit)
        return limit

    def _ohlcv_page_override(self, symbol: str) -> int | None:
        market = self.market(symbol) or {}
        return OHLCV_PAGE_OVERRIDES.get((self.exchange_id, market.get("type") or "spot"))

    def _features_ohlcv_limit(self, symbol: str) -> int | None:
        ex = self._exchange
        features = getattr(ex, "features", None) or {}
        try:
            market = ex.market(symbol)
        except Exception:
            return None
        section = features.get(market.get("type") or "spot") or {}
        if "fetchOHLCV" not in section:  # derivatives are nested by settlement kind
            section = section.get("linear" if market.get("linear") else "inverse") or {}
        limit = (section.get("fetchOHLCV") or {}).get("limit")
        return int(limit) if isinstance(limit, (int, float)) and limit > 0 else None

    # -- the universe and the pace ---------------------------------------------------------

    def markets(self) -> dict[str, dict[str, Any]]:
        """ccxt's markets by unified symbol, as last loaded."""
        return dict(self._exchange.markets or {})

    async def reload_markets(self) -> None:
        """Load the market list again: symbols get listed and delisted while LIVE runs."""
        await self._call("load_markets", True)

    async def fetch_tickers(self, market_type: str = "spot") -> dict[str, dict[str, Any]]:
        """Every market's 24h ticker in one request (ranking by quote volume needs no more)."""
        if not self._exchange.has.get("fetchTickers"):
            raise ExchangeRejected(f"{self.exchange_id} offers no fetchTickers through ccxt")
        # A plain fetch_tickers asks for ccxt's ``defaultType`` (Bybit's is swap): name the type
        # whenever it differs from that.
        options = getattr(self._exchange, "options", None)
        default = options.get("defaultType", "spot") if isinstance(options, dict) else "spot"
        params = {} if market_type == default else {"type": market_type}
        return await self._call("fetch_tickers", None, params) or {}

    def seconds_per_ohlcv_request(self) -> float:
        """How long ccxt's throttler spaces two OHLCV requests: ``rateLimit`` x the endpoint's cost.

        Binance: 50 ms x 0.4 = 20 ms (3,000 klines a minute); OKX 110 ms x 0.5; Kraken
        1,000 ms x 1.2; KuCoin 16 ms (``CCXT_DEFAULTS``) x 3; Coinbase 34 ms x 3. Unknown endpoints
        cost 1.
        """
        ex = self._exchange
        rate_limit_ms = float(getattr(ex, "rateLimit", 0) or 0)
        cost = 1.0
        endpoint = OHLCV_ENDPOINTS.get(self.exchange_id)
        if endpoint is not None:
            try:
                node: Any = ex.api
                for part in endpoint:
                    node = node[part]
                cost = float(node.get("cost", 1) if isinstance(node, dict) else node)
            except (KeyError, TypeError, ValueError, AttributeError):
                cost = 1.0
        return rate_limit_ms * cost / 1000

    # -- requests --------------------------------------------------------------------------

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int | None = None,
                          limit: int | None = None) -> list[list[Any]]:
        """``limit`` bars from ``since`` (the newest ones when ``since`` is None)."""
        if (self.exchange_id in OHLCV_END_BOUNDED and since is not None and limit
                and has_fixed_length(timeframe)):  # a month's page has no fixed width
            until = since + (limit - 1) * timeframe_ms(timeframe)
            return await self._call("fetch_ohlcv", symbol, timeframe, since, limit, {"until": until})
        return await self._call("fetch_ohlcv", symbol, timeframe, since, limit)

    async def fetch_funding_rate_history(self, symbol: str, since: int | None = None,
                                         limit: int | None = None,
                                         params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """ccxt's funding rate history structures, retried and translated like candles."""
        return await self._call("fetch_funding_rate_history", symbol, since, limit, params or {})

    async def fetch_open_interest_history(self, symbol: str, period: str, since: int | None = None,
                                          limit: int | None = None,
                                          params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """ccxt's open interest structures of one period, retried and translated like candles."""
        return await self._call("fetch_open_interest_history", symbol, period, since, limit, params or {})

    def timeframes(self) -> list[str]:
        """The timeframes ccxt lists for this exchange (what ``--mode probe`` reports)."""
        return list((getattr(self._exchange, "timeframes", None) or {}).keys())

    def rate_limit_ms(self) -> float:
        """The pace ccxt keeps between two requests, in milliseconds."""
        return float(getattr(self._exchange, "rateLimit", 0) or 0)

    def market(self, symbol: str) -> dict[str, Any] | None:
        """ccxt's market structure of ``symbol``, or None when the exchange does not list it."""
        return (self._exchange.markets or {}).get(symbol)

    def offers(self, method: str) -> bool:
        """Whether ccxt implements ``method`` (a ``has`` key, e.g. fetchFundingRateHistory)."""
        return bool(self._exchange.has.get(method))

    async def exchange_now_ms(self) -> int:
        """Now on the exchange's clock, which decides when a bar closes, not ours."""
        now = self._clock()
        stale = self._clock_sampled_at is None or now - self._clock_sampled_at > CLOCK_REFRESH_SECONDS
        if stale and self._exchange.has.get("fetchTime"):
            # One sample serves every series waiting on it: 200 concurrent series must not send
            # 200 time requests in the cycle the clock goes stale.
            if self._clock_sample is None or self._clock_sample.done():
                self._clock_sample = asyncio.ensure_future(self._sample_clock())
            await asyncio.shield(self._clock_sample)
        return int(self._clock() * 1000) + self._clock_offset_ms

    async def _sample_clock(self) -> None:
        before = self._clock()
        try:
            server_ms = await self._call("fetch_time")
        except (ExchangeUnavailable, ExchangeRejected) as exc:
            # Keep the previous offset: being a few hundred ms off is better than stopping.
            log.warning("could not read the exchange clock: %s", exc, extra={"event": "clock_sync_error"})
            self._clock_sampled_at = before
            return
        after = self._clock()
        if isinstance(server_ms, (int, float)):
            self._clock_offset_ms = int(server_ms - (before + after) / 2 * 1000)
        self._clock_sampled_at = after

    async def _call(self, method: str, *args: Any) -> Any:
        """One ccxt call with the retry policy; ccxt errors leave as the worker's own."""
        assert self._slots is not None, "open() first"
        network_attempt = rate_attempt = 0
        while True:
            await self._respect_cooldown()
            try:
                async with self._slots:
                    return await getattr(self._exchange, method)(*args)
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                rate_attempt += 1
                delay = self._rate_limit_delay(rate_attempt)
                if rate_attempt >= self._rate_limit_backoff.attempts or delay is None:
                    raise translate(exc) from exc
                # The limit is per client (per IP on Binance), so every request of this worker
                # waits, not only this one: requests sent meanwhile would count towards a ban.
                self._cooldown_until = max(self._cooldown_until, self._clock() + delay)
                error: Exception = exc
            except ccxt.NetworkError as exc:
                network_attempt += 1
                if network_attempt >= self._network_backoff.attempts:
                    raise translate(exc) from exc
                delay = self._network_backoff.delay(network_attempt, self._rng)
                error = exc
            except ccxt.BaseError as exc:
                if not self._is_outage(exc):
                    raise translate(exc) from exc
                network_attempt += 1
                if network_attempt >= self._network_backoff.attempts:
                    raise ExchangeUnavailable(f"{type(exc).__name__}: {exc}"[:500]) from exc
                delay = self._network_backoff.delay(network_attempt, self._rng)
                error = exc
            if self._aborted is not None and self._aborted.is_set():
                raise translate(error) from error
            log.warning("%s %s failed (%s), retrying in %.1f s", self.exchange_id, method,
                        type(error).__name__, delay,
                        extra={"event": "backoff_retry", "attempt": network_attempt + rate_attempt,
                               "delay_s": round(delay, 3), "error": str(error)[:300]})
            if not isinstance(error, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
                await self._wait(delay)

    def _is_outage(self, exc: Exception) -> bool:
        """Whether a plain ccxt ExchangeError is the exchange failing (``OUTAGE_ANSWERS``)."""
        text = str(exc)
        return type(exc) is ccxt.ExchangeError and any(
            answer in text for answer in OUTAGE_ANSWERS.get(self.exchange_id, ()))

    async def _respect_cooldown(self) -> None:
        remaining = self._cooldown_until - self._clock()
        if remaining > 0 and not (self._aborted is not None and self._aborted.is_set()):
            await self._wait(remaining)

    async def _wait(self, delay: float) -> None:
        """The backoff pause, cut short by :meth:`abort_retries`."""
        if self._aborted is None:
            await self._sleep(delay)
            return
        pause = asyncio.ensure_future(self._sleep(delay))
        abort = asyncio.ensure_future(self._aborted.wait())
        await asyncio.wait({pause, abort}, return_when=asyncio.FIRST_COMPLETED)
        for task in (pause, abort):
            task.cancel()

    def _rate_limit_delay(self, attempt: int) -> float | None:
        headers = getattr(self._exchange, "last_response_headers", None)
        headers = headers if isinstance(headers, dict) else None
        retry_after = parse_retry_after(headers)
        if retry_after is None:
            retry_after = _reset_after(headers)
        if retry_after is None:
            return self._rate_limit_backoff.delay(attempt, self._rng)
        if retry_after > MAX_RETRY_AFTER_SECONDS:
            return None
        return retry_after


def _reset_after(headers: dict | None) -> float | None:
    """Seconds until a rate limit resets, from a header of ``RATE_LIMIT_RESET_HEADERS``."""
    for key, value in (headers or {}).items():
        unit = RATE_LIMIT_RESET_HEADERS.get(str(key).lower())
        if unit is not None:
            try:
                return max(0.0, float(value) * unit)
            except (TypeError, ValueError):
                return None
    return None
