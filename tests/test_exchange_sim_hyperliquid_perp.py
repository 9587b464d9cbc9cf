"""Contract tests: the real ccxt against the simulator's Hyperliquid perpetuals, their candles and
hourly funding (``fundingHistory``: ascending from startTime, 500 a response at most)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, truth
from simulator.derivatives import HOUR_MS, truth_funding
from simulator.dialects.hyperliquid import Hyperliquid
from tests.dialect_contract import MIN, FakeClock, anchor, make, raw

PERP = "BTC/USDC:USDC"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("hyperliquid", PERP))


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


def test_perpetuals_are_listed_beside_spot(sim: ExchangeSimulator, hyperliquid: ccxt.Exchange) -> None:
    market = hyperliquid.markets[PERP]
    assert (market["baseName"], market["swap"], market["linear"], market["settle"]) == ("BTC", True, True, "USDC")
    assert {"ETH/USDC:USDC", "SOL/USDC:USDC", "BTC/USDC"} <= set(hyperliquid.markets)
    assert hyperliquid.markets["BTC/USDC"]["spot"]
    assert "info/metaAndAssetCtxs" in {r.endpoint for r in sim.requests}


def test_perp_candles_are_asked_by_coin_name_and_equal_truth(hyperliquid: ccxt.Exchange, clock: FakeClock) -> None:
    since = (clock.ms // MIN - 3000) * MIN
    got = hyperliquid.fetch_ohlcv(PERP, "1m", since, 1000)
    assert json.loads(hyperliquid.last_request_body)["req"]["coin"] == "BTC"
    assert got == truth("hyperliquid", PERP, "1m", since, since + 1100 * MIN, clock.ms)[:1000]


def test_perp_candles_keep_only_the_newest_5000(hyperliquid: ccxt.Exchange, clock: FakeClock) -> None:
    got = hyperliquid.fetch_ohlcv(PERP, "1m", clock.ms - 20_000 * MIN, 5000)
    assert got and got[0][0] == clock.ms // MIN * MIN - 4999 * MIN


def test_funding_is_hourly_and_pages_500_at_most_from_start_time(hyperliquid: ccxt.Exchange,
                                                                  clock: FakeClock) -> None:
    since = clock.ms - 800 * HOUR_MS
    first = hyperliquid.fetch_funding_rate_history(PERP, since, 1000)
    assert json.loads(hyperliquid.last_request_body) == {"type": "fundingHistory", "coin": "BTC", "startTime": since}
    assert len(first) == 500                                    # the exchange's cap, not ccxt's
    second = hyperliquid.fetch_funding_rate_history(PERP, first[-1]["timestamp"] + 1, 1000)
    got = [[r["timestamp"], r["fundingRate"]] for r in first + second]
    assert got == truth_funding("hyperliquid", PERP, since, clock.ms + 1, clock.ms)
    assert len(got) in (799, 800)                               # one an hour
    assert {ts % HOUR_MS < 100 for ts, _ in got} == {True}


def test_funding_end_time_is_inclusive_and_a_window_equals_truth(hyperliquid: ccxt.Exchange,
                                                                 clock: FakeClock) -> None:
    start = (clock.ms - 50 * HOUR_MS) // HOUR_MS * HOUR_MS
    until = start + 10 * HOUR_MS + 6
    got = hyperliquid.fetch_funding_rate_history(PERP, start, 100, {"until": until})
    assert [[r["timestamp"], r["fundingRate"]] for r in got] == truth_funding(
        "hyperliquid", PERP, start, until + 1, clock.ms)


def test_open_interest_history_is_not_offered(hyperliquid: ccxt.Exchange) -> None:
    assert hyperliquid.has["fetchOpenInterestHistory"] is False
    with pytest.raises(ccxt.NotSupported):
        hyperliquid.fetch_open_interest_history(PERP, "1h")


def test_funding_without_a_coin_is_a_422(sim: ExchangeSimulator) -> None:
    status, _, body = raw(sim, "/hyperliquid/info", {"type": "fundingHistory", "startTime": 0})
    assert status == 422 and "coin" in body


def test_funding_history_weighs_20_plus_one_per_20_rates(clock: FakeClock) -> None:
    dialect = Hyperliquid()
    day = {"type": "fundingHistory", "coin": "BTC", "startTime": clock.ms - 40 * HOUR_MS}
    assert dialect.cost("info/fundingHistory", {}, day, now_ms=clock.ms) == 20 + 41 // 20
    assert dialect.cost("info/fundingHistory", {}, {**day, "startTime": 0}, now_ms=clock.ms) == 20 + 500 // 20
