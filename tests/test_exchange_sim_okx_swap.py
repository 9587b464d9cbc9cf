"""Contract tests: the real ccxt against the simulator's OKX swaps, their funding rates and
open interest (newest-first pages, exclusive cursors, 100 a page, 3 months of funding)."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, truth
from simulator.derivatives import HOUR_MS, truth_funding, truth_open_interest
from tests.dialect_contract import MIN, FakeClock, anchor, make, raw

SWAP = "BTC/USDT:USDT"
DAY = 24 * HOUR_MS


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("okx", SWAP))


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("okx", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def okx(sim: ExchangeSimulator) -> ccxt.Exchange:
    ex = make(sim, "okx")
    ex.load_markets()
    return ex


def test_swaps_are_listed_beside_spot(okx: ccxt.Exchange) -> None:
    market = okx.markets[SWAP]
    assert (market["id"], market["swap"], market["linear"], market["settle"]) == ("BTC-USDT-SWAP", True, True, "USDT")
    assert market["contractSize"] == 0.01
    assert okx.markets["BTC/USDT"]["spot"]


def test_swap_candles_equal_truth_with_the_base_volume_column(okx: ccxt.Exchange, clock: FakeClock) -> None:
    since = (clock.ms // MIN - 250) * MIN
    page = okx.fetch_ohlcv(SWAP, "1m", since, 100)
    assert page == truth("okx", SWAP, "1m", since, since + 100 * MIN, clock.ms)


def test_funding_pages_go_back_100_at_a_time_and_equal_truth(sim: ExchangeSimulator, okx: ccxt.Exchange,
                                                              clock: FakeClock) -> None:
    newest = okx.fetch_funding_rate_history(SWAP, None, 100)
    assert len(newest) == 100
    older = okx.fetch_funding_rate_history(SWAP, None, 100, {"after": newest[0]["timestamp"]})
    got = [[r["timestamp"], r["fundingRate"]] for r in older + newest]
    start = older[0]["timestamp"]
    assert got == truth_funding("okx", SWAP, start, clock.ms + 1, clock.ms)
    sim.clear_requests()
    capped = okx.fetch_funding_rate_history(SWAP, None, 500)
    assert sim.requests[-1].query["limit"] == "500" and len(capped) == 100   # OKX caps at 100


def test_funding_is_kept_for_three_months(okx: ccxt.Exchange, clock: FakeClock) -> None:
    beyond = okx.fetch_funding_rate_history(SWAP, None, 100, {"after": clock.ms - 90 * DAY})
    assert beyond == []
    edge = okx.fetch_funding_rate_history(SWAP, None, 100, {"after": clock.ms - 89 * DAY})
    assert edge and min(r["timestamp"] for r in edge) >= clock.ms - 90 * DAY


@pytest.mark.parametrize("period,period_ms", [("5m", 5 * MIN), ("1h", HOUR_MS)])
def test_open_interest_windows_equal_truth(sim: ExchangeSimulator, okx: ccxt.Exchange, clock: FakeClock,
                                           period: str, period_ms: int) -> None:
    since = (clock.ms - 150 * period_ms) // period_ms * period_ms
    sim.clear_requests()
    got = okx.fetch_open_interest_history(SWAP, period, since, 100)
    query = sim.requests[-1].query
    assert (query["begin"], query["limit"]) == (str(since - 1), "100")
    expected = truth_open_interest("okx", SWAP, period_ms, since, since + 100 * period_ms, clock.ms)
    assert [[p["timestamp"], p["openInterestAmount"], p["openInterestValue"]] for p in got] == expected


def test_open_interest_days_follow_hong_kong_midnight(okx: ccxt.Exchange, clock: FakeClock) -> None:
    got = okx.fetch_open_interest_history(SWAP, "1d", clock.ms - 20 * DAY, 10)
    assert got and {p["timestamp"] % DAY for p in got} == {16 * HOUR_MS}


def test_open_interest_of_a_spot_market_is_refused(sim: ExchangeSimulator) -> None:
    status, _, body = raw(sim, "/okx/api/v5/rubik/stat/contracts/open-interest-history?instId=BTC-USDT&period=5m")
    assert status == 200 and body["code"] == "51001"
