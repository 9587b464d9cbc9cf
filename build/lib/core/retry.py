"""Backoff schedules and Retry-After parsing, for requests to exchanges and to Loki.

Numbers from the project's resilience decisions: network trouble backs off from 1 s doubling
to 32 s over 5 attempts; throttling starts at 2 s (capped at 30 s) unless the exchange says
how long to wait. Jitter spreads the retries of many series so they don't return in step.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float
    factor: float
    cap: float
    attempts: int
    jitter: float = 0.5  # the delay is drawn from [(1 - jitter) * d, d]

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``attempt`` (1 = the first retry)."""
        nominal = min(self.cap, self.base * self.factor ** (attempt - 1))
        draw = (rng or random).random()
        return nominal * (1 - self.jitter * draw)


NETWORK_BACKOFF = Backoff(base=1.0, factor=2.0, cap=32.0, attempts=5)
RATE_LIMIT_BACKOFF = Backoff(base=2.0, factor=2.0, cap=30.0, attempts=5)
# An exchange asking for a longer pause than this is banning us; waiting inside one request
# would stall the whole worker, so the request fails and the next cycle tries again.
MAX_RETRY_AFTER_SECONDS = 120.0


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After value: delta-seconds or an HTTP date; None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_retry_after(headers: dict | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), if the exchange sent one."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            return retry_after_seconds(str(value))
    return None
