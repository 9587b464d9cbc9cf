"""ccxt's leaky bucket, woken when the next request may go instead of every millisecond.

While requests wait, ccxt's async throttler checks its bucket every ``delay`` (1 ms). A LIVE
worker with a thousand series always has requests waiting, so at Binance's 50 kline requests
a second the loop woke 1,000 times a second to let 50 through: about 1 ms of CPU per request,
a third of that worker's CPU. This loop sleeps until the bucket has refilled enough for the
request at the head of the queue. The bucket is ccxt's own (tokens, refill rate, capacity,
cost per endpoint), so requests go out at the same pace.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ccxt.async_support.base.throttler import Throttler


class RefillAwareThrottler(Throttler):
    async def leaky_bucket_loop(self) -> None:
        config, queue = self.config, self.queue
        last_ms = time.time() * 1000
        while self.running:
            future, cost = queue[0]
            cost = config["cost"] if cost is None else cost
            if config["tokens"] >= 0:
                config["tokens"] -= cost
                if not future.done():
                    future.set_result(None)
                queue.popleft()
                await asyncio.sleep(0)  # the released request starts before the next check
                if not queue:
                    self.running = False
            else:
                # refillRate is tokens per millisecond; ccxt's delay stays the shortest nap.
                deficit_ms = -config["tokens"] / config["refillRate"]
                await asyncio.sleep(max(config["delay"], deficit_ms / 1000))
                now_ms = time.time() * 1000
                refill = (now_ms - last_ms) * config["refillRate"]
                config["tokens"] = min(config["tokens"] + refill, config["capacity"])
                last_ms = now_ms


def install(exchange: Any) -> None:
    """Give ``exchange`` (a ccxt async instance) the refill-aware loop; a no-op for others.

    Only ccxt's default leaky bucket is replaced: an exchange configured for ccxt's rolling
    window keeps its own throttler.
    """
    throttler = getattr(exchange, "throttler", None)
    if type(throttler) is Throttler and throttler.config.get("algorithm") == "leakyBucket":
        exchange.throttler = RefillAwareThrottler(throttler.config, throttler.loop)
