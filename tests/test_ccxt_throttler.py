"""The refill-aware throttler: ccxt's bucket and pace, without waking every millisecond."""

from __future__ import annotations

import asyncio
import time

import ccxt.async_support as ccxt_async
from ccxt.async_support.base.throttler import Throttler

from worker import ccxt_throttler
from worker.ccxt_throttler import RefillAwareThrottler

# Binance klines: rateLimit 50 ms, cost 0.4, so one request every 20 ms
BINANCE_BUCKET = {"delay": 0.001, "capacity": 1, "cost": 1, "refillRate": 1 / 50, "algorithm": "leakyBucket",
                  "windowSize": 60000.0, "rateLimit": 50}


def released_and_naps(throttler_type: type, seconds: float, monkeypatch) -> tuple[list[float], int]:
    """Release times of requests always waiting (eight callers) and the throttler's naps."""
    naps = 0
    real_sleep = asyncio.sleep

    async def counted_sleep(delay: float, *args):
        nonlocal naps
        naps += delay > 0
        return await real_sleep(delay, *args)

    async def scenario() -> list[float]:
        throttler = throttler_type(dict(BINANCE_BUCKET))
        released: list[float] = []

        async def caller() -> None:
            while True:
                await throttler(0.4)
                released.append(time.monotonic())

        callers = [asyncio.create_task(caller()) for _ in range(8)]
        await real_sleep(seconds)
        for task in callers:
            task.cancel()
        return released

    with monkeypatch.context() as patch:
        patch.setattr(asyncio, "sleep", counted_sleep)
        released = asyncio.run(scenario())
    return released, naps


def test_requests_go_out_at_ccxts_pace_with_one_nap_each(monkeypatch) -> None:
    released, naps = released_and_naps(RefillAwareThrottler, 1.0, monkeypatch)
    span = released[-1] - released[0]
    # never faster than the bucket allows: one request per 20 ms, plus what a full bucket holds
    assert len(released) - 1 <= span / 0.020 + 1 / 0.4
    assert len(released) >= 30                       # about 50 in the second
    assert naps <= 2 * len(released), (naps, len(released))
    ccxt_released, ccxt_naps = released_and_naps(Throttler, 1.0, monkeypatch)
    assert ccxt_naps >= 5 * len(ccxt_released)       # ccxt's: one nap a millisecond meanwhile


def test_installed_on_ccxts_leaky_bucket_only() -> None:
    async def build() -> tuple:
        binance, kraken = ccxt_async.binance(), ccxt_async.kraken({"rateLimiterAlgorithm": "rollingWindow"})
        kept = kraken.throttler
        ccxt_throttler.install(binance)
        ccxt_throttler.install(kraken)
        ccxt_throttler.install(object())              # a test double: left alone
        await binance.close()
        await kraken.close()
        return binance.throttler, kraken.throttler, kept

    binance, kraken, kraken_before = asyncio.run(build())
    assert type(binance) is RefillAwareThrottler
    assert {k: binance.config[k] for k in BINANCE_BUCKET} == BINANCE_BUCKET
    assert kraken is kraken_before
