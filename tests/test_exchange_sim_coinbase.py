"""Contract tests: the real ccxt against the simulator's Coinbase Advanced Trade spot dialect."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, served_bar, truth
from tests.dialect_contract import MIN, FakeClock, anchor, fetch_pages, make, raw

SYMBOL = "BTC/USD"
CANDLES = "/coinbase/api/v3/brokerage/market/products/BTC-USD/candles"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("coinbase", SYMBOL))


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("coinbase", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def coinbase(sim: ExchangeSimulator) -> ccxt.Exchange:
    sim.clear_requests()
    ex = make(sim, "coinbase")
    ex.load_markets()
    return ex


def test_markets_from_public_endpoints_only_and_time_in_seconds(sim: ExchangeSimulator, coinbase: ccxt.Exchange,
                                                                clock: FakeClock) -> None:
    asked = [(r.endpoint, r.query) for r in sim.requests]
    assert asked == [("v2/currencies", {}), ("v2/currencies/crypto", {}), ("v2/exchange-rates", {}),
                     ("brokerage/market/products", {}), ("brokerage/market/products", {"product_type": "FUTURE"})]
    assert {"BTC/USD", "ETH/USD", "SOL/USD"} <= set(coinbase.markets)
    market = coinbase.markets["BTC/USD"]
    assert (market["id"], market["spot"], market["active"]) == ("BTC-USD", True, True)
    assert coinbase.features["spot"]["fetchOHLCV"]["limit"] == 300
    clock.advance(0.75)
    try:
        assert coinbase.fetch_time() == clock.ms // 1000 * 1000       # /v2/time: whole seconds
    finally:
        clock.advance(-0.75)


def test_pages_of_300_from_since_equal_truth_and_ask_in_seconds(sim: ExchangeSimulator, coinbase: ccxt.Exchange,
                                                                clock: FakeClock) -> None:
    since = (clock.ms // MIN - 1000) * MIN
    until = clock.ms // MIN * MIN
    sim.clear_requests()
    got, pages = fetch_pages(coinbase, SYMBOL, "1m", since, until, 1000)       # ccxt caps a request at 300
    assert got == truth("coinbase", SYMBOL, "1m", since, until, clock.ms) and pages == 4
    first = sim.requests[0]
    assert first.path == "/api/v3/brokerage/market/products/BTC-USD/candles"
    assert first.query == {"product_id": "BTC-USD", "granularity": "ONE_MINUTE", "start": str(since // 1000),
                           "end": str(since // 1000 + 300 * 60)}


def test_rows_come_newest_first_as_named_fields(sim: ExchangeSimulator, clock: FakeClock) -> None:
    start = (clock.ms // MIN - 400) * MIN // 1000
    _, _, body = raw(sim, f"{CANDLES}?granularity=ONE_MINUTE&start={start}&end={start + 350 * 60}")
    stamps = [int(row["start"]) for row in body["candles"]]
    assert stamps == sorted(stamps, reverse=True) and stamps[-1] >= start and stamps[0] < start + 350 * 60
    t, o, h, low, c, v = truth("coinbase", SYMBOL, "1m", start * 1000, (start + 350 * 60) * 1000, clock.ms)[-1]
    newest = body["candles"][0]
    assert [float(newest[k]) for k in ("start", "open", "high", "low", "close", "volume")] == [t / 1000, o, h, low,
                                                                                               c, v]


def test_a_span_over_350_candles_is_refused_as_bad_request(sim: ExchangeSimulator, coinbase: ccxt.Exchange,
                                                           clock: FakeClock) -> None:
    start = (clock.ms // MIN - 1000) * MIN // 1000
    status, _, body = raw(sim, f"{CANDLES}?granularity=ONE_MINUTE&start={start}&end={start + 351 * 60}")
    assert (status, body["error"]) == (400, "INVALID_ARGUMENT") and "350" in body["message"]
    with pytest.raises(ccxt.BadRequest, match="number of candles"):
        coinbase.fetch_ohlcv(SYMBOL, "1m", start * 1000, params={"until": (start + 400 * 60) * 1000})


def test_history_reaches_back_to_the_listing(coinbase: ccxt.Exchange, clock: FakeClock) -> None:
    since = (clock.ms // MIN - 400 * 1440) * MIN
    assert coinbase.fetch_ohlcv(SYMBOL, "1m", since, 300) == truth("coinbase", SYMBOL, "1m", since,
                                                                   since + 300 * MIN, clock.ms)


def test_the_open_bar_is_served(coinbase: ccxt.Exchange, clock: FakeClock) -> None:
    current = clock.ms // MIN * MIN
    rows = coinbase.fetch_ohlcv(SYMBOL, "1m", current - 10 * MIN, 20)
    assert rows[-1] == served_bar("coinbase", SYMBOL, "1m", current, clock.ms)
    assert rows[:-1] == truth("coinbase", SYMBOL, "1m", current - 10 * MIN, current, clock.ms)


def test_an_unknown_product_and_an_internal_error_are_exchange_errors(sim: ExchangeSimulator,
                                                                      coinbase: ccxt.Exchange) -> None:
    sim.set_listed("coinbase", SYMBOL, listed=False)
    try:
        with pytest.raises(ccxt.ExchangeError, match="ProductID is invalid"):
            coinbase.fetch_ohlcv(SYMBOL, "1m", limit=5)
    finally:
        sim.set_listed("coinbase", SYMBOL, listed=True)
    sim.add_fault("coinbase", "exchange_error", count=1)
    with pytest.raises(ccxt.ExchangeError):
        coinbase.fetch_ohlcv(SYMBOL, "1m", limit=5)


def test_rate_limit_is_10_requests_a_second_per_ip(clock: FakeClock) -> None:
    with ExchangeSimulator(now=clock) as server:
        assert all(raw(server, "/coinbase/v2/time")[0] == 200 for _ in range(10))
        status, _, body = raw(server, "/coinbase/api/v3/brokerage/time")           # one bucket for all
        assert (status, body["errors"][0]["id"]) == (429, "rate_limit_exceeded")
        with pytest.raises(ccxt.RateLimitExceeded):
            make(server, "coinbase").fetch_time()
        clock.advance(1)
        assert raw(server, "/coinbase/v2/time")[0] == 200
