"""The ccxt adapter: retries, backoff numbers, exception translation."""

from __future__ import annotations

import asyncio
import random

import ccxt
import pytest

from core.retry import NETWORK_BACKOFF, RATE_LIMIT_BACKOFF
from tests.mock_exchange import client_for, mock_exchange
from worker.errors import ExchangeRejected, ExchangeSetupError, ExchangeUnavailable, RateLimited, UnsupportedSeries
from worker.exchange import ExchangeClient


def fetch_with(errors: list, result=None, headers=None):
    exchange = mock_exchange()
    answers = iter(errors + [result or []])

    async def fetch(*args):
        answer = next(answers)
        if isinstance(answer, Exception):
            exchange.last_response_headers = headers or {}
            raise answer
        return answer
    exchange.fetch_ohlcv.side_effect = fetch
    sleeps: list[float] = []
    client = client_for(exchange, clock=lambda: 0.0, sleeps=sleeps, rng=random.Random(7))

    async def go():
        await client.open()
        return await client.fetch_ohlcv("BTC/USDT", "1m", None, 2)
    return go, sleeps, exchange


def test_network_errors_back_off_exponentially_then_succeed() -> None:
    go, sleeps, _ = fetch_with([ccxt.RequestTimeout("t"), ccxt.NetworkError("n"),
                                ccxt.ExchangeNotAvailable("503"), ccxt.OnMaintenance("m")], [[1]])
    assert asyncio.run(go()) == [[1]]
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps, start=1):
        nominal = min(32.0, 2.0 ** (attempt - 1))
        assert nominal * 0.5 <= delay <= nominal


def test_network_errors_give_up_after_five_attempts() -> None:
    go, sleeps, exchange = fetch_with([ccxt.NetworkError("down")] * 10)
    with pytest.raises(ExchangeUnavailable) as info:
        asyncio.run(go())
    assert isinstance(info.value.__cause__, ccxt.NetworkError)
    assert exchange.fetch_ohlcv.await_count == NETWORK_BACKOFF.attempts
    assert len(sleeps) == NETWORK_BACKOFF.attempts - 1
    assert max(sleeps) <= NETWORK_BACKOFF.cap


def test_rate_limit_honours_retry_after() -> None:
    go, sleeps, _ = fetch_with([ccxt.RateLimitExceeded("429")], [[1]], headers={"Retry-After": "7"})
    asyncio.run(go())
    assert sleeps == [7.0]


def test_rate_limit_without_retry_after_backs_off_from_two_seconds() -> None:
    go, sleeps, _ = fetch_with([ccxt.DDoSProtection("ddos")] * 3, [[1]])
    asyncio.run(go())
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 4.0
    assert all(s <= RATE_LIMIT_BACKOFF.cap for s in sleeps)


def test_a_ban_longer_than_the_limit_fails_the_request_instead_of_stalling() -> None:
    go, sleeps, _ = fetch_with([ccxt.DDoSProtection("418")], headers={"retry-after": "3600"})
    with pytest.raises(RateLimited):
        asyncio.run(go())
    assert sleeps == []


@pytest.mark.parametrize("error, expected", [
    (ccxt.BadSymbol("x"), UnsupportedSeries),
    (ccxt.BadRequest("x"), ExchangeRejected),
    (ccxt.ExchangeError("x"), ExchangeRejected),
    (ccxt.AuthenticationError("x"), ExchangeRejected),
    (ccxt.BadResponse("garbage"), ExchangeUnavailable),
])
def test_non_network_errors_are_not_retried(error, expected) -> None:
    go, sleeps, exchange = fetch_with([error] * 3)
    with pytest.raises(expected):
        asyncio.run(go())
    assert exchange.fetch_ohlcv.await_count == 1 and sleeps == []


def test_load_markets_is_retried() -> None:
    exchange = mock_exchange()
    exchange.load_markets.side_effect = [ccxt.NetworkError("x"), exchange.markets]
    sleeps: list[float] = []
    asyncio.run(client_for(exchange, clock=lambda: 0.0, sleeps=sleeps).open())
    assert exchange.load_markets.await_count == 2 and len(sleeps) == 1


def test_bad_ccxt_settings_are_a_setup_error() -> None:
    def broken(settings):
        raise TypeError("unexpected option")
    client = ExchangeClient("mockex", {"bogus": 1}, factory=broken)
    with pytest.raises(ExchangeSetupError, match="unexpected option"):
        asyncio.run(client.open())


def test_rate_limiter_is_always_enabled_and_settings_passed_through() -> None:
    seen = {}

    def factory(settings):
        seen.update(settings)
        return mock_exchange()
    asyncio.run(ExchangeClient("mockex", {"timeout": 1234, "enableRateLimit": False},
                               factory=factory).open())
    assert seen == {"timeout": 1234, "enableRateLimit": True}


def test_a_429_pauses_every_request_of_the_client_not_only_the_one_that_got_it() -> None:
    exchange = mock_exchange()
    clock = {"now": 100.0}
    calls: list[tuple[str, float]] = []

    async def fetch(symbol, *args):
        calls.append((symbol, clock["now"]))
        if symbol == "BTC/USDT" and len(calls) == 1:
            exchange.last_response_headers = {"Retry-After": "5"}
            raise ccxt.RateLimitExceeded("429")
        return []
    exchange.fetch_ohlcv.side_effect = fetch

    async def sleep(seconds: float) -> None:
        clock["now"] += seconds

    client = ExchangeClient("mockex", {}, factory=lambda s: exchange, clock=lambda: clock["now"], sleep=sleep)

    async def go():
        await client.open()
        first = asyncio.create_task(client.fetch_ohlcv("BTC/USDT", "1m", None, 2))
        await asyncio.sleep(0)  # the 429 lands before the second request starts
        await client.fetch_ohlcv("ETH/USDT", "1m", None, 2)
        await first
    asyncio.run(go())
    assert calls[0] == ("BTC/USDT", 100.0)
    assert all(at >= 105.0 for _, at in calls[1:]) and len(calls) == 3


def test_series_waiting_on_a_stale_clock_share_one_time_request() -> None:
    exchange = mock_exchange(server_time_ms=lambda: 1_000_500)
    client = client_for(exchange, clock=lambda: 1000.0)

    async def go():
        await client.open()
        return await asyncio.gather(*(client.exchange_now_ms() for _ in range(50)))
    assert set(asyncio.run(go())) == {1_000_500}
    assert exchange.fetch_time.await_count == 1
