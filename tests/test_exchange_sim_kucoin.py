"""Contract tests: the real ccxt against the simulator's KuCoin spot dialect."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, served_bar, truth
from tests.dialect_contract import MIN, FakeClock, anchor, fetch_pages, make, raw

SYMBOL = "BTC/USDT"
DAY = 1440 * MIN


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("kucoin", SYMBOL))


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("kucoin", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kucoin(sim: ExchangeSimulator) -> ccxt.Exchange:
    sim.clear_requests()
    ex = make(sim, "kucoin")
    ex.load_markets()
    return ex


def test_markets_from_the_symbols_list_alone_and_time(sim: ExchangeSimulator, kucoin: ccxt.Exchange,
                                                      clock: FakeClock) -> None:
    assert [r.endpoint for r in sim.requests] == ["currencies", "symbols"]
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(kucoin.markets)
    market = kucoin.markets["BTC/USDT"]
    assert (market["id"], market["spot"], market["active"]) == ("BTC-USDT", True, True)
    assert kucoin.features["spot"]["fetchOHLCV"]["limit"] == 1500
    assert kucoin.fetch_time() == clock.ms


def test_pages_of_1500_from_since_equal_truth_and_ask_in_seconds(sim: ExchangeSimulator, kucoin: ccxt.Exchange,
                                                                 clock: FakeClock) -> None:
    since = (clock.ms // MIN - 4000) * MIN
    until = clock.ms // MIN * MIN
    sim.clear_requests()
    got, pages = fetch_pages(kucoin, SYMBOL, "1m", since, until, 1500)
    assert got == truth("kucoin", SYMBOL, "1m", since, until, clock.ms) and pages == 3
    assert sim.requests[0].query == {"symbol": "BTC-USDT", "type": "1min", "startAt": str(since // 1000),
                                     "endAt": str(since // 1000 + 1500 * 60)}


def test_rows_come_newest_first_as_time_open_close_high_low(sim: ExchangeSimulator, clock: FakeClock) -> None:
    start = (clock.ms // MIN - 3000) * MIN
    _, _, body = raw(sim, f"/kucoin/api/v1/market/candles?symbol=BTC-USDT&type=1min&startAt={start // 1000}"
                          f"&endAt={(start + 2000 * MIN) // 1000}")
    rows = body["data"]
    stamps = [int(row[0]) * 1000 for row in rows]
    assert body["code"] == "200000" and stamps == sorted(stamps, reverse=True)
    # A window wider than 1500 bars: the newest 1500 bars of it.
    expected = truth("kucoin", SYMBOL, "1m", start, start + 2000 * MIN, clock.ms)[-1500:]
    assert len(rows) == 1500 and stamps[-1] == expected[0][0]
    t, o, h, low, c, v = expected[-1]
    assert [float(x) for x in rows[0][:6]] == [t / 1000, o, c, h, low, v] and len(rows[0]) == 7


def test_history_reaches_back_to_the_listing(kucoin: ccxt.Exchange, clock: FakeClock) -> None:
    since = (clock.ms // MIN - 400 * 1440) * MIN
    assert kucoin.fetch_ohlcv(SYMBOL, "1m", since, 1500) == truth("kucoin", SYMBOL, "1m", since,
                                                                  since + 1500 * MIN, clock.ms)


def test_without_since_the_newest_bars_come_with_the_open_one(kucoin: ccxt.Exchange, clock: FakeClock) -> None:
    current = clock.ms // MIN * MIN
    rows = kucoin.fetch_ohlcv(SYMBOL, "1m", limit=5)
    assert rows[-1] == served_bar("kucoin", SYMBOL, "1m", current, clock.ms)
    assert rows[:-1] == truth("kucoin", SYMBOL, "1m", current - 10 * MIN, current, clock.ms)[-len(rows) + 1:]


def test_a_delisted_pair_and_a_bad_type_are_bad_requests(sim: ExchangeSimulator, kucoin: ccxt.Exchange) -> None:
    sim.set_listed("kucoin", SYMBOL, listed=False)
    try:
        with pytest.raises(ccxt.BadRequest, match="This pair is not provided at present"):
            kucoin.fetch_ohlcv(SYMBOL, "1m", limit=5)
    finally:
        sim.set_listed("kucoin", SYMBOL, listed=True)
    status, _, body = raw(sim, "/kucoin/api/v1/market/candles?symbol=BTC-USDT&type=7min")
    assert (status, body["code"]) == (400, "400100")


def test_an_internal_error_is_exchange_not_available(sim: ExchangeSimulator, kucoin: ccxt.Exchange) -> None:
    sim.add_fault("kucoin", "exchange_error", count=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        kucoin.fetch_ohlcv(SYMBOL, "1m", limit=5)


def test_rate_limit_is_a_public_pool_of_2000_weight_per_30_s(clock: FakeClock) -> None:
    with ExchangeSimulator(now=clock) as server:
        path = "/kucoin/api/v1/market/candles?symbol=BTC-USDT&type=1min&startAt=0&endAt=0"
        assert all(raw(server, path)[0] == 200 for _ in range(666))          # klines weigh 3
        status, headers, body = raw(server, "/kucoin/api/v1/timestamp")      # one pool for all
        assert (status, body["code"]) == (429, "429000") and int(headers["gw-ratelimit-reset"]) > 0
        with pytest.raises(ccxt.RateLimitExceeded):
            make(server, "kucoin").fetch_time()
        clock.advance(30)
        assert raw(server, path)[0] == 200                                   # a fresh window
