"""Contract tests: the real ccxt against the simulator's Hyperliquid info API (spot)."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, served_bar, truth
from tests.dialect_contract import MIN, FakeClock, anchor, make, raw

SYMBOL = "BTC/USDC"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("hyperliquid", SYMBOL))


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("hyperliquid", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hyperliquid(sim: ExchangeSimulator) -> ccxt.Exchange:
    ex = make(sim, "hyperliquid")
    ex.load_markets()
    return ex


def test_markets_and_time(sim: ExchangeSimulator, hyperliquid: ccxt.Exchange, clock: FakeClock) -> None:
    assert {"BTC/USDC", "ETH/USDC", "SOL/USDC"} <= set(hyperliquid.markets)
    market = hyperliquid.markets["BTC/USDC"]
    assert (market["id"], market["baseName"], market["spot"]) == ("@142", "UBTC", True)
    assert hyperliquid.features["spot"]["fetchOHLCV"]["limit"] == 5000
    assert hyperliquid.fetch_time() == clock.ms
    assert {r.endpoint for r in sim.requests} >= {"info/spotMeta", "info/spotMetaAndAssetCtxs",
                                                  "info/exchangeStatus"}


def test_range_within_the_newest_5000_equals_truth(sim: ExchangeSimulator, hyperliquid: ccxt.Exchange,
                                                   clock: FakeClock) -> None:
    since = (clock.ms // MIN - 3000) * MIN
    sim.clear_requests()
    got = hyperliquid.fetch_ohlcv(SYMBOL, "1m", since, 1000)
    assert got == truth("hyperliquid", SYMBOL, "1m", since, since + 1100 * MIN, clock.ms)[:1000]
    [req] = sim.requests
    assert (req.method, req.path, req.endpoint) == ("POST", "/info", "info/candleSnapshot")


def test_only_the_newest_5000_bars_exist(hyperliquid: ccxt.Exchange, clock: FakeClock) -> None:
    current = clock.ms // MIN * MIN
    oldest = current - 4999 * MIN
    got = hyperliquid.fetch_ohlcv(SYMBOL, "1m", current - 20_000 * MIN, 5000)
    assert got[0][0] >= oldest and len(got) <= 5000
    assert got[:-1] == truth("hyperliquid", SYMBOL, "1m", oldest, current, clock.ms)
    assert got[-1] == served_bar("hyperliquid", SYMBOL, "1m", current, clock.ms)


def test_candle_rows_have_the_real_fields(sim: ExchangeSimulator, clock: FakeClock) -> None:
    start = clock.ms // MIN * MIN - 2 * MIN
    _, _, rows = raw(sim, "/hyperliquid/info", {"type": "candleSnapshot", "req": {
        "coin": "@142", "interval": "1m", "startTime": start, "endTime": clock.ms}})
    assert set(rows[0]) == {"t", "T", "s", "i", "o", "c", "h", "l", "v", "n"}
    assert rows[0]["T"] == rows[0]["t"] + MIN - 1 and rows[0]["s"] == "@142"
    assert raw(sim, "/hyperliquid/info", {"type": "nope"})[0] == 422


def test_weight_per_candles_returned_meets_429_before_ccxt_pace_would(clock: FakeClock) -> None:
    """1200 weight a minute; a 5000-candle snapshot weighs 20 + 83: the 12th is refused."""
    with ExchangeSimulator(now=clock) as server:
        ex = make(server, "hyperliquid")
        ex.load_markets()                                  # 20 + 20 + 2
        since = clock.ms - 6000 * MIN
        served = 0
        with pytest.raises(ccxt.RateLimitExceeded):
            for _ in range(20):
                ex.fetch_ohlcv(SYMBOL, "1m", since, 5000)
                served += 1
        assert served == 11 and server.counters("hyperliquid")["status:429"] == 1
