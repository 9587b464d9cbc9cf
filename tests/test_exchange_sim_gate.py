"""Contract tests: the real ccxt against the simulator's Gate API v4 spot dialect."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, served_bar, truth
from tests.dialect_contract import MIN, FakeClock, anchor, fetch_pages, make, raw

SYMBOL = "BTC/USDT"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("gate", SYMBOL))


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("gate", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gate(sim: ExchangeSimulator) -> ccxt.Exchange:
    ex = make(sim, "gate")
    ex.load_markets()
    return ex


def test_markets_and_time(sim: ExchangeSimulator, gate: ccxt.Exchange, clock: FakeClock) -> None:
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(gate.markets)
    market = gate.markets["BTC/USDT"]
    assert (market["id"], market["spot"], market["active"]) == ("BTC_USDT", True, True)
    assert gate.fetch_time() == clock.ms


def test_pages_of_1000_from_since_equal_truth_and_ask_in_seconds(sim: ExchangeSimulator, gate: ccxt.Exchange,
                                                                 clock: FakeClock) -> None:
    since = (clock.ms // MIN - 2500) * MIN
    until = clock.ms // MIN * MIN
    sim.clear_requests()
    got, pages = fetch_pages(gate, SYMBOL, "1m", since, until, 1000)
    assert got == truth("gate", SYMBOL, "1m", since, until, clock.ms) and pages == 3
    assert sim.requests[0].query == {"currency_pair": "BTC_USDT", "interval": "1m",
                                     "from": str(since // 1000), "to": str(since // 1000 + 999 * 60)}


def test_since_more_than_10000_bars_back_is_refused(gate: ccxt.Exchange, clock: FakeClock) -> None:
    current = clock.ms // MIN * MIN
    with pytest.raises(ccxt.BadRequest, match="Maximum 10000 points ago"):
        gate.fetch_ohlcv(SYMBOL, "1m", current - 10_000 * MIN, 10)
    oldest = current - 9_999 * MIN
    page = gate.fetch_ohlcv(SYMBOL, "1m", oldest, 10)
    assert page == truth("gate", SYMBOL, "1m", oldest, oldest + 10 * MIN, clock.ms)


def test_a_span_over_1000_points_is_refused(sim: ExchangeSimulator, clock: FakeClock) -> None:
    start = clock.ms // 1000 - 5000 * 60
    status, _, body = raw(sim, f"/gate/api/v4/spot/candlesticks?currency_pair=BTC_USDT&interval=1m"
                               f"&from={start}&to={start + 1000 * 60}")
    assert (status, body["label"]) == (400, "INVALID_PARAM_VALUE") and "1000 data points" in body["message"]


def test_without_since_the_newest_bars_come_with_the_open_one(sim: ExchangeSimulator, gate: ccxt.Exchange,
                                                              clock: FakeClock) -> None:
    current = clock.ms // MIN * MIN
    rows = gate.fetch_ohlcv(SYMBOL, "1m", limit=5)
    assert rows[-1] == served_bar("gate", SYMBOL, "1m", current, clock.ms)
    assert rows[:-1] == truth("gate", SYMBOL, "1m", current - 10 * MIN, current, clock.ms)[-4:]
    _, _, body = raw(sim, "/gate/api/v4/spot/candlesticks?currency_pair=BTC_USDT&interval=1m&limit=2")
    assert [row[7] for row in body] == ["true", "false"] and len(body[0]) == 8


def test_unknown_pair_is_a_bad_symbol(gate: ccxt.Exchange, sim: ExchangeSimulator) -> None:
    status, _, body = raw(sim, "/gate/api/v4/spot/candlesticks?currency_pair=NOPE_USDT&interval=1m")
    assert (status, body["label"]) == (400, "INVALID_CURRENCY_PAIR")


def test_rate_limit_is_429_too_many_requests(clock: FakeClock) -> None:
    with ExchangeSimulator(now=clock) as server:
        assert all(raw(server, "/gate/api/v4/spot/time")[0] == 200 for _ in range(200))
        status, _, body = raw(server, "/gate/api/v4/spot/time")
        assert (status, body["label"]) == (429, "TOO_MANY_REQUESTS")
        assert raw(server, "/gate/api/v4/spot/currency_pairs")[0] == 200     # per endpoint
        with pytest.raises(ccxt.RateLimitExceeded):
            make(server, "gate").fetch_time()
