"""Contract tests: the real ccxt against the simulator's Bitget API v2 spot dialect."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, served_bar, truth
from tests.dialect_contract import MIN, FakeClock, anchor, fetch_pages, full_windows_since, make, raw

SYMBOL = "BTC/USDT"
DAY = 1440 * MIN


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("bitget", SYMBOL))


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("bitget", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bitget(sim: ExchangeSimulator) -> ccxt.Exchange:
    ex = make(sim, "bitget")
    ex.load_markets()
    return ex


def test_markets_and_time(bitget: ccxt.Exchange, clock: FakeClock) -> None:
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT"} <= set(bitget.markets)
    market = bitget.markets["BTC/USDT"]
    assert (market["id"], market["spot"], market["active"]) == ("BTCUSDT", True, True)
    assert bitget.features["spot"]["fetchOHLCV"]["limit"] == 200
    assert bitget.fetch_time() == clock.ms


def test_recent_bars_come_from_candles_in_windows_of_limit_bars(sim: ExchangeSimulator, bitget: ccxt.Exchange,
                                                                clock: FakeClock) -> None:
    since = full_windows_since("bitget", SYMBOL, (clock.ms // MIN - 2 * 1440) * MIN, 200 * MIN, 5)
    until = since + 1000 * MIN
    sim.clear_requests()
    got, pages = fetch_pages(bitget, SYMBOL, "1m", since, until, 200)
    assert got == truth("bitget", SYMBOL, "1m", since, until, clock.ms) and pages == 5
    first = sim.requests[0]
    assert first.endpoint == "spot/market/candles"
    assert first.query == {"symbol": "BTCUSDT", "granularity": "1min", "startTime": str(since),
                           "endTime": str(since + 200 * MIN), "limit": "200"}


def test_bars_29_days_back_come_from_history_candles_200_at_most(sim: ExchangeSimulator, bitget: ccxt.Exchange,
                                                                 clock: FakeClock) -> None:
    since = (clock.ms // MIN - 40 * 1440) * MIN
    sim.clear_requests()
    got = bitget.fetch_ohlcv(SYMBOL, "1m", since, 200)
    assert got == truth("bitget", SYMBOL, "1m", since, since + 200 * MIN, clock.ms)
    assert sim.requests[-1].endpoint == "spot/market/history-candles"
    # Asked for 1000, ccxt sizes the window by 1000 minutes and the archive serves the newest
    # 200 bars before its end (more than 200 minutes back when some minutes had no trade).
    wide = bitget.fetch_ohlcv(SYMBOL, "1m", since, 1000)
    assert wide == truth("bitget", SYMBOL, "1m", since, since + 1000 * MIN, clock.ms)[-200:]


def test_candles_serve_only_the_last_30_days_of_1m_bars(sim: ExchangeSimulator, clock: FakeClock) -> None:
    start = clock.ms - 35 * DAY
    _, _, body = raw(sim, f"/bitget/api/v2/spot/market/candles?symbol=BTCUSDT&granularity=1min"
                          f"&startTime={start}&endTime={start + 1000 * MIN}&limit=1000")
    assert body["code"] == "00000" and body["data"] == []
    _, _, body = raw(sim, f"/bitget/api/v2/spot/market/history-candles?symbol=BTCUSDT&granularity=1min"
                          f"&endTime={start + 1000 * MIN}&limit=1000")
    stamps = [int(row[0]) for row in body["data"]]
    assert len(stamps) <= 200 and stamps == sorted(stamps) and stamps[-1] < start + 1000 * MIN


def test_newest_bars_include_the_open_one(bitget: ccxt.Exchange, clock: FakeClock) -> None:
    current = clock.ms // MIN * MIN
    rows = bitget.fetch_ohlcv(SYMBOL, "1m", limit=3)
    assert rows[-1] == served_bar("bitget", SYMBOL, "1m", current, clock.ms)


def test_rate_limit_is_429_with_code_429(clock: FakeClock) -> None:
    with ExchangeSimulator(now=clock) as server:
        path = "/bitget/api/v2/spot/market/candles?symbol=BTCUSDT&granularity=1min&limit=1"
        assert all(raw(server, path)[0] == 200 for _ in range(20))
        status, _, body = raw(server, path)
        assert (status, body["code"], body["msg"]) == (429, "429", "Too Many Requests")
        ex = make(server, "bitget")
        ex.load_markets()
        with pytest.raises(ccxt.DDoSProtection):
            ex.fetch_ohlcv(SYMBOL, "1m", limit=1)
