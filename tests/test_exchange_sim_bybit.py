"""Contract tests: the real ccxt against the simulator's Bybit v5 (spot and linear perpetuals):
klines newest first with the latest bars served when only ``start`` is given, funding history
in windows of 200, open interest pages with a cursor, the IP rate limit and unknown symbols."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from simulator import ExchangeSimulator, truth
from simulator.derivatives import HOUR_MS, truth_funding, truth_open_interest
from tests.dialect_contract import MIN, FakeClock, anchor, make, raw

SPOT, SWAP = "BTC/USDT", "BTC/USDT:USDT"
DAY = 24 * HOUR_MS


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(anchor("bybit", SPOT, SWAP))  # both are compared with their open bar


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    server.set_rate_limit("bybit", enabled=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bybit(sim: ExchangeSimulator) -> ccxt.Exchange:
    ex = make(sim, "bybit")
    ex.load_markets()
    return ex


def test_spot_pairs_and_perpetuals_share_ids_and_are_told_apart(bybit: ccxt.Exchange) -> None:
    spot, swap = bybit.markets[SPOT], bybit.markets[SWAP]
    assert (spot["id"], spot["spot"]) == ("BTCUSDT", True)
    assert (swap["id"], swap["swap"], swap["linear"], swap["contractSize"]) == ("BTCUSDT", True, True, 1)
    assert bybit.markets["SOL/USDT:USDT"]["info"]["fundingInterval"] == 240      # 4-hourly funding


def test_tickers_of_each_category_name_their_own_markets(sim: ExchangeSimulator, bybit: ccxt.Exchange) -> None:
    spot = bybit.fetch_tickers(None, {"type": "spot"})
    assert sim.requests[-1].query["category"] == "spot"
    swaps = bybit.fetch_tickers()                   # ccxt's defaultType for Bybit is swap
    assert sim.requests[-1].query["category"] == "linear"
    assert set(spot) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert set(swaps) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"}
    assert all(t["quoteVolume"] > 0 and t["baseVolume"] > 0 for t in [*spot.values(), *swaps.values()])


@pytest.mark.parametrize("symbol", [SPOT, SWAP])
def test_klines_in_a_window_equal_truth_with_the_open_bar(sim: ExchangeSimulator, bybit: ccxt.Exchange,
                                                          clock: FakeClock, symbol: str) -> None:
    since = (clock.ms // MIN - 120) * MIN
    sim.clear_requests()
    page = bybit.fetch_ohlcv(symbol, "1m", since, 1000, {"until": since + 999 * MIN})
    query = sim.requests[-1].query
    assert (query["start"], query["end"], query["category"]) == (str(since), str(since + 999 * MIN),
                                                                 "linear" if ":" in symbol else "spot")
    assert page[:-1] == truth("bybit", symbol, "1m", since, clock.ms + 1, clock.ms)
    assert page[-1][0] == clock.ms // MIN * MIN                       # and the open bar


@pytest.mark.parametrize("symbol", [SPOT, SWAP])
def test_windows_of_1000_page_forward_to_truth(bybit: ccxt.Exchange, clock: FakeClock, symbol: str) -> None:
    start = (clock.ms // MIN - 2500) * MIN
    end = (clock.ms // MIN - 100) * MIN
    rows, since = [], start
    while since < end:
        page = bybit.fetch_ohlcv(symbol, "1m", since, 1000, {"until": since + 999 * MIN})
        rows += [r for r in page if r[0] < end]
        since += 1000 * MIN
    assert rows == truth("bybit", symbol, "1m", start, end, clock.ms)


def test_start_alone_serves_the_latest_bars_not_those_from_start(sim: ExchangeSimulator, bybit: ccxt.Exchange,
                                                                 clock: FakeClock) -> None:
    since = (clock.ms // MIN - 500) * MIN
    sim.clear_requests()
    page = bybit.fetch_ohlcv(SPOT, "1m", since)
    assert "end" not in sim.requests[-1].query and sim.requests[-1].query["limit"] == "200"
    assert page[:-1] == truth("bybit", SPOT, "1m", since, clock.ms + 1, clock.ms)[-199:]
    assert page[0][0] > since


def test_hourly_and_daily_bars_equal_truth(bybit: ccxt.Exchange, clock: FakeClock) -> None:
    for timeframe, size in (("1h", HOUR_MS), ("1d", DAY)):
        since = (clock.ms // size - 30) * size
        page = bybit.fetch_ohlcv(SWAP, timeframe, since, 50, {"until": since + 49 * size})
        assert page[:-1] == truth("bybit", SWAP, timeframe, since, clock.ms + 1, clock.ms)


def test_funding_windows_of_200_equal_truth(sim: ExchangeSimulator, bybit: ccxt.Exchange, clock: FakeClock) -> None:
    interval = 8 * HOUR_MS
    since = clock.ms - 450 * interval
    sim.clear_requests()
    got, cursor = [], since
    while cursor <= clock.ms:
        page = bybit.fetch_funding_rate_history(SWAP, cursor, 200)
        got += page
        if len(page) < 200:
            break
        cursor = page[-1]["timestamp"] + 1
    first = sim.requests[0].query
    assert (first["startTime"], first["endTime"]) == (str(since), str(since + 200 * interval))
    assert [[r["timestamp"], r["fundingRate"]] for r in got] == truth_funding("bybit", SWAP, since, clock.ms + 1,
                                                                               clock.ms)
    assert len(sim.requests) == 3


def test_funding_is_served_newest_first_and_capped_at_200(sim: ExchangeSimulator, bybit: ccxt.Exchange,
                                                          clock: FakeClock) -> None:
    newest = bybit.fetch_funding_rate_history(SWAP, None, 500)
    assert len(newest) == 200
    assert [[r["timestamp"], r["fundingRate"]] for r in newest] == truth_funding(
        "bybit", SWAP, newest[0]["timestamp"], clock.ms + 1, clock.ms)
    _, _, body = raw(sim, f"/bybit/v5/market/funding/history?category=linear&symbol=BTCUSDT"
                          f"&startTime={clock.ms - DAY}")
    assert body["retCode"] == 10001                                  # startTime alone is refused


@pytest.mark.parametrize("period,period_ms", [("5m", 5 * MIN), ("1h", HOUR_MS), ("1d", DAY)])
def test_open_interest_windows_equal_truth(sim: ExchangeSimulator, bybit: ccxt.Exchange, clock: FakeClock,
                                           period: str, period_ms: int) -> None:
    since = (clock.ms - 150 * period_ms) // period_ms * period_ms
    until = since + 199 * period_ms
    sim.clear_requests()
    got = bybit.fetch_open_interest_history(SWAP, period, since, 200, {"until": until})
    query = sim.requests[-1].query
    assert (query["startTime"], query["endTime"], query["limit"]) == (str(since), str(until), "200")
    expected = truth_open_interest("bybit", SWAP, period_ms, since, until + 1, clock.ms)
    assert [[p["timestamp"], p["openInterestAmount"]] for p in got] == [p[:2] for p in expected]
    assert {p["openInterestValue"] for p in got} == {None}         # linear: the amount only


def test_open_interest_pages_back_with_the_cursor(bybit: ccxt.Exchange, clock: FakeClock) -> None:
    since = (clock.ms - 30 * 5 * MIN) // (5 * MIN) * (5 * MIN)
    pages, params = [], {"until": clock.ms}
    while True:
        response = bybit.publicGetV5MarketOpenInterest({"category": "linear", "symbol": "BTCUSDT",
                                                        "intervalTime": "5min", "startTime": since,
                                                        "endTime": clock.ms, "limit": 10, **params})
        pages.append(response["result"]["list"])
        cursor = response["result"]["nextPageCursor"]
        if not cursor:
            break
        params = {"cursor": cursor}
    got = sorted([int(p["timestamp"]), float(p["openInterest"])] for page in pages for p in page)
    assert got == [p[:2] for p in truth_open_interest("bybit", SWAP, 5 * MIN, since, clock.ms + 1, clock.ms)]
    assert [len(p) for p in pages] == [10, 10, 10]


def test_a_lone_start_time_does_not_move_the_open_interest_window(bybit: ccxt.Exchange, clock: FakeClock) -> None:
    response = bybit.publicGetV5MarketOpenInterest({"category": "linear", "symbol": "BTCUSDT",
                                                    "intervalTime": "1h", "startTime": clock.ms - 30 * DAY,
                                                    "limit": 5})
    newest = [int(p["timestamp"]) for p in response["result"]["list"]]
    assert newest == [p[0] for p in truth_open_interest("bybit", SWAP, HOUR_MS, 0, clock.ms + 1, clock.ms)][::-1][:5]


def test_the_ip_limit_is_rate_limit_exceeded(sim: ExchangeSimulator, clock: FakeClock) -> None:
    ex = make(sim, "bybit")
    ex.load_markets()
    sim.set_rate_limit("bybit", enabled=True, limit=1, window=600)
    try:
        ex.fetch_ohlcv(SPOT, "1m", None, 10)
        with pytest.raises(ccxt.RateLimitExceeded):
            ex.fetch_ohlcv(SPOT, "1m", None, 10)
    finally:
        sim.set_rate_limit("bybit", enabled=False)


def test_unknown_symbols_and_spot_derivative_data_are_refused(sim: ExchangeSimulator, bybit: ccxt.Exchange) -> None:
    status, _, body = raw(sim, "/bybit/v5/market/kline?category=spot&symbol=NOPEUSDT&interval=1")
    assert (status, body["retCode"], body["retMsg"]) == (200, 10001, "Not supported symbols")
    with pytest.raises(ccxt.BadSymbol):
        bybit.publicGetV5MarketKline({"category": "spot", "symbol": "NOPEUSDT", "interval": "1"})
    with pytest.raises(ccxt.BadRequest):
        bybit.fetch_open_interest_history("BTC/USDT", "1h")                   # ccxt: spot has none
    _, _, body = raw(sim, "/bybit/v5/market/funding/history?category=spot&symbol=BTCUSDT")
    assert body["retCode"] == 10001
    with pytest.raises(ccxt.BadRequest):
        bybit.fetch_ohlcv(SPOT, "1m", None, 5, {"interval": "7"})


FAULTS = {"http_503": ccxt.ExchangeNotAvailable, "http_504": ccxt.RequestTimeout, "http_429": ccxt.RateLimitExceeded,
          "rate_limit": ccxt.RateLimitExceeded, "exchange_error": ccxt.RequestTimeout}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_faults_map_to_what_ccxt_makes_of_bybit(sim: ExchangeSimulator, bybit: ccxt.Exchange, kind: str) -> None:
    """exchange_error is Bybit's retCode 10016 "Request timeout", a retryable RequestTimeout."""
    sim.add_fault("bybit", kind, count=1, endpoint="kline")
    try:
        with pytest.raises(ccxt.BaseError) as err:
            bybit.fetch_ohlcv(SPOT, "1m", None, 5)
        assert type(err.value) is FAULTS[kind]
        assert bybit.fetch_ohlcv(SPOT, "1m", None, 5)                     # fault consumed
    finally:
        sim.clear_faults("bybit")
