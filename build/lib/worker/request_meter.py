"""Counts every HTTP request a ccxt exchange sends: its outcome, its latency, 429/418 answers.

ccxt sends each request through ``Exchange.fetch``, after its throttler, and hands the HTTP
status to ``on_rest_response`` before it maps the answer to an exception. Wrapping both
measures what the exchange saw (retries included), not what a caller asked for. The status
travels from one to the other in a context variable: requests run concurrently, and each
runs in its own task.
"""

from __future__ import annotations

import bisect
import contextvars
import time
from typing import Any, Callable

import ccxt

from core.telemetry import LATENCY_BUCKETS, THROTTLE_STATUSES, RequestStats

_STATUS: contextvars.ContextVar[list[int | None] | None] = contextvars.ContextVar("http_status", default=None)


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return "rate_limited"
    if isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse)):
        return "network_error"
    return "rejected"


class RequestMeter:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._outcomes: dict[str, int] = {}
        self._throttled: dict[str, int] = {}
        self._latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0

    def instrument(self, exchange: Any) -> None:
        """Wrap ``exchange.fetch`` (and ``on_rest_response`` where it has one)."""
        send = exchange.fetch

        async def measured_fetch(*args: Any, **kwargs: Any) -> Any:
            holder: list[int | None] = [None]
            token = _STATUS.set(holder)
            started = self._clock()
            error: BaseException | None = None
            try:
                return await send(*args, **kwargs)
            except Exception as exc:
                error = exc
                raise
            finally:
                _STATUS.reset(token)
                self.record(self._clock() - started, outcome_of(error), holder[0])
        exchange.fetch = measured_fetch

        on_response = getattr(exchange, "on_rest_response", None)
        if on_response is None:
            return

        def note_status(code: Any, *args: Any) -> Any:
            holder = _STATUS.get()
            if holder is not None:
                holder[0] = code
            return on_response(code, *args)
        exchange.on_rest_response = note_status

    def record(self, seconds: float, outcome: str, status: int | None = None) -> None:
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        if status is not None and str(status) in THROTTLE_STATUSES:
            self._throttled[str(status)] = self._throttled.get(str(status), 0) + 1
        self._latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def snapshot(self) -> RequestStats:
        return RequestStats(dict(self._outcomes), dict(self._throttled), tuple(self._latency),
                            self._latency_sum)
