"""Contract tests: the real ccxt (sync and async_support) against the exchange simulator.

The simulator runs on a frozen, injectable clock anchored near the real time:
okx.fetch_ohlcv compares ``since`` with ccxt's own clock to choose between the
"candles" and "history-candles" endpoints, so the simulated "now" must not be
far from the wall clock, but it must not move by itself either.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import ccxt
import ccxt.async_support as accxt
import pytest

from simulator import (
    Binance,
    ExchangeSimulator,
    Reply,
    Request,
    ccxt_config,
    quiet_minutes,
    served_bar,
    truth,
)
from tests.dialect_contract import MIN, FakeClock, fetch_pages, raw

SYMBOLS = {"binance": ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
           "kraken": ("BTC/USD", "ETH/USD", "SOL/USD"),
           "okx": ("BTC/USDT", "ETH/USDT", "SOL/USDT")}
EXCHANGES = tuple(SYMBOLS)                # the dialects this file covers; others have files of their own
BTC = {ex: symbols[0] for ex, symbols in SYMBOLS.items()}
# kraken's real rateLimit (1000 ms x cost 1.2) would make the suite slow.
SPEEDUP = {"kraken": {"rateLimit": 20}}


def _traded(ex_id: str, symbol: str, minute: int) -> bool:
    return not quiet_minutes(ex_id, symbol, minute * MIN, minute * MIN + 1)


def _anchor() -> float:
    """25 s into a recent minute that (like the next one) has trades everywhere.

    Near the wall clock yet fixed; avoiding no-trade minutes keeps the tests
    on the open bar independent of when they run.
    """
    minute = int(time.time() // 60) - 1
    while not all(_traded(ex, BTC[ex], m) for ex in EXCHANGES for m in (minute, minute + 1)):
        minute -= 1
    return minute * 60 + 25


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(_anchor())


@pytest.fixture(scope="module")
def sim(clock: FakeClock) -> Iterator[ExchangeSimulator]:
    server = ExchangeSimulator(now=clock).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolate(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo knob changes and clock moves made by a test on the shared server."""
    if "sim" not in request.fixturenames:
        yield
        return
    server: ExchangeSimulator = request.getfixturevalue("sim")
    clk: FakeClock = request.getfixturevalue("clock")
    saved = clk.t
    for ex in EXCHANGES:                  # a frozen clock never refills buckets
        server.set_rate_limit(ex, enabled=False)
    yield
    clk.t = saved
    server.clear_faults()
    server.set_latency(0.0)
    server.set_clock_offset(0)
    for ex in EXCHANGES:
        server.set_latency(None, ex)
        server.set_clock_offset(None, ex)


def make(sim: ExchangeSimulator, ex_id: str, **extra: object) -> ccxt.Exchange:
    config = {**sim.ccxt_config(ex_id), "enableRateLimit": True, **SPEEDUP.get(ex_id, {}), **extra}
    return getattr(ccxt, ex_id)(config)


@pytest.fixture(scope="module")
def exchanges(sim: ExchangeSimulator) -> dict[str, ccxt.Exchange]:
    return {ex_id: make(sim, ex_id) for ex_id in EXCHANGES}


# ------------------------------------------------------------- markets/time --

@pytest.mark.parametrize("ex_id", EXCHANGES)
def test_load_markets_and_time(sim: ExchangeSimulator, exchanges: dict, clock: FakeClock,
                               ex_id: str) -> None:
    ex = exchanges[ex_id]
    markets = ex.load_markets()
    assert set(SYMBOLS[ex_id]) <= set(markets)
    assert all(markets[s]["spot"] and markets[s]["active"] for s in SYMBOLS[ex_id])
    expected = clock.ms // 1000 * 1000 if ex_id == "kraken" else clock.ms
    assert ex.fetch_time() == expected                  # kraken reports whole seconds
    for value in _leaves(ex.urls["api"]):
        assert value.startswith(sim.base_url)


def _leaves(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, str):
        yield node


def test_kraken_asset_names_map_to_unified_codes(exchanges: dict) -> None:
    market = exchanges["kraken"].load_markets()["BTC/USD"]
    assert (market["id"], market["baseId"], market["quoteId"]) == ("XXBTZUSD", "BTC", "USD")
    assert market["info"]["base"] == "XXBT" and market["altname"] == "XBTUSD"


def test_clock_offset_moves_time_and_current_bar(sim: ExchangeSimulator, exchanges: dict,
                                                 clock: FakeClock) -> None:
    clock.t = clock.t // 60 * 60 + 58                   # 2 s before a minute boundary
    sim.set_clock_offset(5_000, exchange="binance")
    ex = exchanges["binance"]
    assert ex.fetch_time() == clock.ms + 5_000
    [bar] = ex.fetch_ohlcv("BTC/USDT", "1m", limit=1)
    assert bar[0] == (clock.ms // MIN + 1) * MIN   # the exchange is in the next minute
    sim.add_fault("okx", "clock_offset", count=1, offset_ms=-3_000)
    assert exchanges["okx"].fetch_time() == clock.ms - 3_000
    assert exchanges["okx"].fetch_time() == clock.ms


# ------------------------------------------------------------------ candles --

@pytest.mark.parametrize("ex_id", EXCHANGES)
def test_closed_range_matches_truth(exchanges: dict, clock: FakeClock, ex_id: str) -> None:
    ex = exchanges[ex_id]
    since = (clock.ms // MIN - 300) * MIN
    for symbol in SYMBOLS[ex_id]:
        got = ex.fetch_ohlcv(symbol, "1m", since, 100)
        if ex_id == "okx":       # limit is a time window: [since, since + 100 bars)
            expected = truth(ex_id, symbol, "1m", since, since + 100 * MIN, clock.ms)
        else:                    # limit counts existing candles from since
            expected = truth(ex_id, symbol, "1m", since, since + 200 * MIN, clock.ms)[:100]
        assert got == expected


@pytest.mark.parametrize("ex_id,timeframe,age,bars,limit", [
    ("binance", "1m", 2500, 2500, 1000), ("binance", "1h", 900, 900, 300),
    ("okx", "1m", 600, 600, 100), ("okx", "5m", 900, 900, 300), ("okx", "1h", 350, 350, 100),
    ("okx", "1m", 2000, 300, 100)])               # older than 1439 bars: history-candles
def test_paging_with_since_yields_truth(exchanges: dict, clock: FakeClock, ex_id: str,
                                        timeframe: str, age: int, bars: int, limit: int) -> None:
    ex = exchanges[ex_id]
    step = ex.parse_timeframe(timeframe) * 1000
    since = (clock.ms // step - age) * step
    until = since + bars * step                          # open bar excluded
    got, pages = fetch_pages(ex, BTC[ex_id], timeframe, since, until, limit)
    assert pages >= bars // limit
    assert got == truth(ex_id, BTC[ex_id], timeframe, since, until, clock.ms)


def test_okx_uses_history_endpoint_and_newest_first_cursors(sim: ExchangeSimulator,
                                                            exchanges: dict, clock: FakeClock) -> None:
    ex = exchanges["okx"]
    since = (clock.ms // MIN - 3 * 1440) * MIN     # older than 1439 bars
    sim.clear_requests()
    got = ex.fetch_ohlcv("BTC/USDT", "1m", since, 100)
    assert got == truth("okx", "BTC/USDT", "1m", since, since + 100 * MIN, clock.ms)
    req = sim.requests[-1]
    assert req.endpoint == "market/history-candles"
    assert req.query == {"instId": "BTC-USDT", "bar": "1m", "limit": "100",
                         "before": str(since - 1), "after": str(since + 100 * MIN)}
    status, _, body = raw(sim, f"/okx/api/v5/market/history-candles?instId=BTC-USDT&bar=1m"
                               f"&after={since + 10 * MIN}&limit=5")
    stamps = [int(row[0]) for row in body["data"]]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] < since + 10 * MIN


def test_okx_history_limit_above_100_returns_newest_part_of_window(exchanges: dict,
                                                                   clock: FakeClock) -> None:
    """ccxt sizes the window by the requested limit, history-candles caps at 100."""
    since = (clock.ms // MIN - 3 * 1440) * MIN
    got = exchanges["okx"].fetch_ohlcv("BTC/USDT", "1m", since, 300)
    window = truth("okx", "BTC/USDT", "1m", since, since + 300 * MIN, clock.ms)
    assert got == window[-100:] and got[0][0] >= since + 150 * MIN


def test_okx_daily_bars_follow_utc8_unless_utc_requested(sim: ExchangeSimulator) -> None:
    _, _, hk = raw(sim, "/okx/api/v5/market/candles?instId=BTC-USDT&bar=1D&limit=3")
    _, _, utc = raw(sim, "/okx/api/v5/market/candles?instId=BTC-USDT&bar=1Dutc&limit=3")
    assert {int(r[0]) % 86_400_000 for r in hk["data"]} == {16 * 3_600_000}
    assert {int(r[0]) % 86_400_000 for r in utc["data"]} == {0}
    assert [r[8] for r in utc["data"]] == ["0", "1", "1"]        # open bar unconfirmed


def test_kraken_ignores_since_and_serves_last_720(sim: ExchangeSimulator, exchanges: dict,
                                                  clock: FakeClock) -> None:
    ex = exchanges["kraken"]
    now = clock.ms
    current = now // MIN * MIN
    sim.clear_requests()
    got = ex.fetch_ohlcv("BTC/USD", "1m", current - 2000 * MIN)
    assert sim.requests[-1].query["since"] == str((current - 2000 * MIN) // 1000 - 60)
    first = current - 719 * MIN
    assert got[0][0] >= first and len(got) <= 720
    assert got[:-1] == truth("kraken", "BTC/USD", "1m", first, current, now)
    assert got[-1] == served_bar("kraken", "BTC/USD", "1m", current, now)
    recent = ex.fetch_ohlcv("BTC/USD", "1m", current - 30 * MIN, 10)
    assert recent == truth("kraken", "BTC/USD", "1m", current - 30 * MIN, current, now)[:10]


@pytest.mark.parametrize("ex_id,timeframe", [("binance", "5m"), ("okx", "1m"), ("kraken", "1m")])
def test_current_bar_is_partial_and_evolves(exchanges: dict, clock: FakeClock, ex_id: str,
                                            timeframe: str) -> None:
    ex, symbol = exchanges[ex_id], BTC[ex_id]
    step = ex.parse_timeframe(timeframe) * 1000
    seen = []
    for _ in range(3):                                   # 25 s, 35 s, 45 s into the minute
        last = ex.fetch_ohlcv(symbol, timeframe, limit=None if ex_id == "kraken" else 3)[-1]
        assert last[0] == clock.ms // step * step
        assert last == served_bar(ex_id, symbol, timeframe, last[0], clock.ms)
        seen.append(last)
        clock.advance(10)
    for before, after in zip(seen, seen[1:]):
        assert after[0] == before[0] and after[1] == before[1]
        assert after[2] >= before[2] and after[3] <= before[3] and after[5] > before[5]
    clock.advance(step / 1000)                           # the bar is closed now
    [closed] = truth(ex_id, symbol, timeframe, seen[0][0], seen[0][0] + 1, clock.ms)
    again = [r for r in ex.fetch_ohlcv(symbol, timeframe, seen[0][0]) if r[0] == seen[0][0]]
    assert again == [closed] and closed[5] > seen[-1][5]


def test_quiet_minute_and_quiet_block_are_missing(exchanges: dict, clock: FakeClock) -> None:
    ex = exchanges["binance"]
    now = clock.ms
    quiet = quiet_minutes("binance", "BTC/USDT", now - 1000 * MIN, now - 10 * MIN)
    assert quiet, "two quiet minutes per 480-minute block"
    got = ex.fetch_ohlcv("BTC/USDT", "1m", quiet[0] - 5 * MIN, 10)
    assert quiet[0] not in [r[0] for r in got] and quiet[0] - MIN in [r[0] for r in got]
    assert got == truth("binance", "BTC/USDT", "1m", quiet[0] - 5 * MIN, quiet[0] + 30 * MIN, now)[:10]
    span = quiet_minutes("binance", "BTC/USDT", now - 28 * 1440 * MIN, now - 60 * MIN)
    block = next(t for t in span if t % (15 * MIN) == 0 and t + 14 * MIN in span)
    bars = ex.fetch_ohlcv("BTC/USDT", "5m", block - 30 * MIN, 12)
    stamps = [r[0] for r in bars]
    assert block not in stamps and block + 10 * MIN not in stamps and block - 5 * MIN in stamps
    assert bars == truth("binance", "BTC/USDT", "5m", block - 30 * MIN, block + 120 * MIN, now)[:12]


@pytest.mark.parametrize("timeframe", ["1h", "4h"])
def test_higher_timeframes_aggregate_minutes(clock: FakeClock, timeframe: str) -> None:
    now = clock.ms
    size = {"1h": 3_600_000, "4h": 14_400_000}[timeframe]
    start = (now // size - 24) * size
    minutes = truth("okx", "ETH/USDT", "1m", start, start + 24 * size, now)
    bars = truth("okx", "ETH/USDT", timeframe, start, start + 24 * size, now)
    assert len(bars) == 24
    for bar in bars:
        sub = [r for r in minutes if bar[0] <= r[0] < bar[0] + size]
        assert bar[1:5] == [sub[0][1], max(r[2] for r in sub), min(r[3] for r in sub), sub[-1][4]]
        assert round(sum(r[5] for r in sub), 8) == bar[5]


# ------------------------------------------------------------------- faults --

EXPECTED = {
    "http_500": ccxt.ExchangeNotAvailable, "http_502": ccxt.ExchangeNotAvailable,
    "http_503": ccxt.ExchangeNotAvailable, "http_504": ccxt.RequestTimeout,
    "timeout": ccxt.RequestTimeout, "reset": ccxt.NetworkError,
    "http_429": {"binance": ccxt.DDoSProtection, "kraken": ccxt.DDoSProtection,
                 "okx": ccxt.RateLimitExceeded},
    "rate_limit": {"binance": ccxt.DDoSProtection, "kraken": ccxt.DDoSProtection,
                   "okx": ccxt.RateLimitExceeded},
    "exchange_error": {"binance": ccxt.ExchangeError, "kraken": ccxt.ExchangeNotAvailable,
                       "okx": ccxt.ExchangeNotAvailable},
}


def _expected(kind: str, ex_id: str) -> type:
    value = EXPECTED[kind]
    return value[ex_id] if isinstance(value, dict) else value


@pytest.mark.parametrize("ex_id", EXCHANGES)
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_fault_maps_to_ccxt_exception(sim: ExchangeSimulator, exchanges: dict, ex_id: str,
                                      kind: str) -> None:
    ex = exchanges[ex_id]
    ex.load_markets()
    ex.timeout = 300
    try:
        sim.add_fault(ex_id, kind, count=1, seconds=1.0)
        with pytest.raises(ccxt.BaseError) as err:
            ex.fetch_ohlcv(BTC[ex_id], "1m", limit=5)
        assert type(err.value) is _expected(kind, ex_id)
        assert ex.fetch_ohlcv(BTC[ex_id], "1m", limit=5)             # fault consumed
    finally:
        ex.timeout = 10_000


def test_duration_fault_expires_with_the_clock(sim: ExchangeSimulator, exchanges: dict,
                                               clock: FakeClock) -> None:
    ex = exchanges["okx"]
    sim.add_fault("okx", "http_503", duration=30)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.fetch_time()
    clock.advance(31)
    assert ex.fetch_time() == clock.ms


@pytest.mark.parametrize("ex_id", EXCHANGES)
def test_garbage_body_is_not_raised_by_ccxt(sim: ExchangeSimulator, exchanges: dict,
                                            ex_id: str) -> None:
    """A 200 with a non-JSON body passes ccxt.fetch untouched: validate rows."""
    ex = exchanges[ex_id]
    ex.load_markets()
    sim.add_fault(ex_id, "garbage")
    rows = ex.fetch_ohlcv(BTC[ex_id], "1m", limit=5)
    if ex_id == "binance":
        assert rows and all(r == [None] * 6 for r in rows)           # one row per character
    else:
        assert rows == []


def test_bad_rows_appear_in_raw_klines(sim: ExchangeSimulator, clock: FakeClock) -> None:
    since = (clock.ms // MIN - 120) * MIN
    path = f"/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={since}&limit=10"
    _, _, clean = raw(sim, path)
    checks = {
        "bad_null": lambda rows: any(r[4] is None for r in rows),
        "bad_negative_volume": lambda rows: any(r[5].startswith("-") for r in rows),
        "bad_high_low": lambda rows: any(float(r[2]) < float(r[3]) for r in rows),
        "bad_offgrid": lambda rows: any(r[0] % MIN for r in rows),
        "bad_duplicate": lambda rows: len(rows) == len(clean) + 1 and len({r[0] for r in rows}) == len(clean),
        "bad_order": lambda rows: [r[0] for r in rows] != sorted(r[0] for r in rows),
    }
    sim.add_fault("binance", "bad_null")
    assert raw(sim, "/binance/api/v3/time")[0] == 200              # only klines are affected
    for kind, check in checks.items():
        if kind != "bad_null":
            sim.add_fault("binance", kind)
        _, _, rows = raw(sim, path)
        assert check(rows) and not check(clean), kind
    assert raw(sim, path)[2] == clean


@pytest.mark.parametrize("ex_id", ["kraken", "okx"])
def test_bad_rows_through_ccxt(sim: ExchangeSimulator, exchanges: dict, clock: FakeClock,
                               ex_id: str) -> None:
    ex = exchanges[ex_id]
    since = (clock.ms // MIN - 60) * MIN
    if ex_id == "kraken":      # the corrupted row is mid-page: ~360 bars back
        since = None
    fetch = lambda: ex.fetch_ohlcv(BTC[ex_id], "1m", since, 20 if since else None)  # noqa: E731
    clean = fetch()
    sim.add_fault(ex_id, "bad_negative_volume")
    assert any(r[5] < 0 for r in fetch())
    sim.add_fault(ex_id, "bad_high_low")
    assert any(r[2] < r[3] for r in fetch())
    sim.add_fault(ex_id, "bad_offgrid")
    assert any(r[0] % MIN for r in fetch())
    sim.add_fault(ex_id, "bad_null")
    assert any(r[4] is None for r in fetch())
    sim.add_fault(ex_id, "bad_duplicate")
    rows = fetch()
    assert len({r[0] for r in rows}) < len(rows)       # ccxt keeps duplicates
    sim.add_fault(ex_id, "bad_order")
    assert fetch() == clean            # ccxt's parse_ohlcvs sorts by timestamp


# --------------------------------------------------------------- rate limits --

@pytest.fixture
def fresh() -> Iterator[tuple[ExchangeSimulator, FakeClock]]:
    clk = FakeClock(_anchor())
    server = ExchangeSimulator(now=clk).start()
    yield server, clk
    server.stop()


def test_binance_weight_limit_429_then_418_ban(fresh: tuple) -> None:
    sim, clock = fresh
    clock.t = clock.t // 60 * 60 + 1
    sim.set_rate_limit("binance", limit=10)                    # weight per minute
    path = "/binance/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5"
    statuses = []
    for _ in range(5):                                          # weight 2 each
        status, headers, _ = raw(sim, path)
        statuses.append(status)
    assert statuses == [200] * 5 and headers["X-MBX-USED-WEIGHT-1M"] == "10"
    status, headers, body = raw(sim, path)
    assert status == 429 and headers["Retry-After"] == "59" and body["code"] == -1003
    assert [raw(sim, path)[0] for _ in range(3)] == [429, 429, 418]
    status, headers, _ = raw(sim, "/binance/api/v3/time")
    assert status == 418 and int(headers["Retry-After"]) == 120
    ex = ccxt.binance({**sim.ccxt_config("binance"), "enableRateLimit": True})
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_time()
    counts = sim.counters("binance")
    assert counts["http_429"] == 3 and counts["http_418"] == 3 and counts["rate_limited"] == 6
    clock.advance(121)
    assert ex.fetch_time() == clock.ms


def test_kraken_rate_limit_is_a_200_body(fresh: tuple) -> None:
    sim, clock = fresh
    path = "/kraken/0/public/Time"
    assert all(raw(sim, path)[0] == 200 for _ in range(15))
    status, _, body = raw(sim, path)
    assert (status, body) == (200, {"error": ["EAPI:Rate limit exceeded"]})
    ex = ccxt.kraken({**sim.ccxt_config("kraken"), "enableRateLimit": True, "rateLimit": 1})
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_time()
    clock.advance(1)
    assert ex.fetch_time() == clock.ms // 1000 * 1000
    assert sim.counters("kraken")["rate_limited"] == 2


def test_okx_per_endpoint_limit_429(fresh: tuple) -> None:
    sim, clock = fresh
    candles = "/okx/api/v5/market/candles?instId=BTC-USDT&bar=1m&limit=1"
    assert all(raw(sim, candles)[0] == 200 for _ in range(40))
    status, _, body = raw(sim, candles)
    assert status == 429 and body["code"] == "50011"
    assert raw(sim, "/okx/api/v5/public/time")[0] == 200      # separate bucket
    ex = ccxt.okx({**sim.ccxt_config("okx"), "enableRateLimit": True})
    ex.load_markets()
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_ohlcv("BTC/USDT", "1m", limit=1)
    clock.advance(0.1)                                          # 20 per second refill
    assert ex.fetch_ohlcv("BTC/USDT", "1m", limit=1)


# -------------------------------------------------------------------- async --

async def _async_flow(sim: ExchangeSimulator, ex_id: str, now: int) -> None:
    ex = getattr(accxt, ex_id)({**sim.ccxt_config(ex_id), "enableRateLimit": True,
                                **SPEEDUP.get(ex_id, {})})
    try:
        markets = await ex.load_markets()
        assert set(SYMBOLS[ex_id]) <= set(markets)
        assert abs(await ex.fetch_time() - now) < 1000
        current = now // MIN * MIN
        since = current - {"binance": 2500, "okx": 300, "kraken": 600}[ex_id] * MIN
        limit = {"binance": 1000, "okx": 100, "kraken": None}[ex_id]
        rows: list[list] = []
        cursor = since
        while cursor < current:
            page = await ex.fetch_ohlcv(BTC[ex_id], "1m", cursor, limit)
            rows += [r for r in page if r[0] < current]
            if not page or ex_id == "kraken":
                break
            cursor = page[-1][0] + MIN
        assert rows == truth(ex_id, BTC[ex_id], "1m", since, current, now)
        last = (await ex.fetch_ohlcv(BTC[ex_id], "1m"))[-1]
        assert last == served_bar(ex_id, BTC[ex_id], "1m", current, now)
        old = current - 3 * 1440 * MIN
        page = await ex.fetch_ohlcv(BTC[ex_id], "1m", old, 100)
        if ex_id == "kraken":                            # since cannot reach back
            assert page[0][0] >= current - 719 * MIN
        elif ex_id == "okx":                             # history-candles: 100 minutes a page
            assert page == truth(ex_id, BTC[ex_id], "1m", old, old + 100 * MIN, now)
            assert len(page) >= 80                       # a few quiet minutes have no bar
        else:                                            # binance: 100 bars from since, quiet minutes skipped
            assert page == truth(ex_id, BTC[ex_id], "1m", old, current, now)[:100]
    finally:
        await ex.close()


@pytest.mark.parametrize("ex_id", EXCHANGES)
def test_async_markets_time_paging_and_partial_bar(sim: ExchangeSimulator, clock: FakeClock,
                                                   ex_id: str) -> None:
    asyncio.run(_async_flow(sim, ex_id, clock.ms))


async def _async_faults(sim: ExchangeSimulator, ex_id: str,
                        plan: list[tuple[str, int]]) -> list[type | None]:
    """Inject each (kind, count) in turn; the ccxt exception class raised, or None."""
    ex = getattr(accxt, ex_id)({**sim.ccxt_config(ex_id), "enableRateLimit": True,
                                "timeout": 300, **SPEEDUP.get(ex_id, {})})
    outcomes: list[type | None] = []
    try:
        await ex.load_markets()
        for kind, count in plan:
            sim.add_fault(ex_id, kind, count=count, seconds=1.0)
            try:
                await ex.fetch_ohlcv(BTC[ex_id], "1m", limit=5)
                outcomes.append(None)
            except ccxt.BaseError as exc:
                outcomes.append(type(exc))
    finally:
        await ex.close()
    return outcomes


@pytest.mark.parametrize("ex_id", EXCHANGES)
def test_async_faults(sim: ExchangeSimulator, ex_id: str) -> None:
    kinds = ["http_503", "http_504", "timeout", "rate_limit", "exchange_error"]
    outcomes = asyncio.run(_async_faults(sim, ex_id, [(kind, 1) for kind in kinds]))
    assert outcomes == [_expected(kind, ex_id) for kind in kinds]


def test_async_single_reset_is_retried_by_aiohttp(sim: ExchangeSimulator) -> None:
    """aiohttp re-sends an idempotent request once after a dropped connection."""
    sim.reset_counters()
    outcomes = asyncio.run(_async_faults(sim, "okx", [("reset", 1), ("reset", 2)]))
    assert outcomes == [None, ccxt.ExchangeNotAvailable]
    assert sim.counters("okx")["endpoint:market/candles"] == 4
    assert sim.counters("okx")["fault:reset"] == 3


async def _kline_connections(sim: ExchangeSimulator, requests: int, reset_at: int | None = None) -> list[int]:
    """The connection (client port) of each kline request async ccxt sends."""
    sim.clear_requests()
    ex = accxt.binance(sim.ccxt_config("binance"))
    try:
        await ex.load_markets()
        for i in range(requests):
            if i == reset_at:
                sim.add_fault("binance", "reset", count=1, endpoint="klines")
            await ex.fetch_ohlcv("BTC/USDT", "1m", limit=1000)
    finally:
        await ex.close()
    return [r.connection for r in sim.requests if r.endpoint == "klines"]


def test_http_1_0_opens_a_connection_per_request(sim: ExchangeSimulator) -> None:
    ports = asyncio.run(_kline_connections(sim, 4))
    assert len(ports) == 4 and len(set(ports)) == 4


def test_keep_alive_serves_requests_on_one_connection_and_a_reset_still_drops_it(clock: FakeClock) -> None:
    with ExchangeSimulator(now=clock, keep_alive=True) as kept:
        ports = asyncio.run(_kline_connections(kept, 4))
        assert len(ports) == 4 and len(set(ports)) == 1
        # aiohttp re-sends once on a dropped pooled connection: the reset shows as one
        # request more, on a new connection, and the page still arrives.
        ports = asyncio.run(_kline_connections(kept, 4, reset_at=2))
        assert len(ports) == 5 and ports[2] != ports[3] and len(set(ports)) == 2


# -------------------------------------------------------- knobs and control --

def test_latency_and_request_log(sim: ExchangeSimulator, exchanges: dict) -> None:
    sim.set_latency(0.2, exchange="okx")
    started = time.monotonic()
    exchanges["okx"].fetch_time()
    assert time.monotonic() - started >= 0.2
    exchanges["binance"].load_markets()
    sim.clear_requests()
    exchanges["binance"].fetch_ohlcv("BTC/USDT", "1h", 1_700_000_000_000, 3)
    [req] = sim.requests
    assert (req.method, req.path, req.endpoint) == ("GET", "/api/v3/klines", "klines")
    assert req.query == {"interval": "1h", "limit": "3", "symbol": "BTCUSDT",
                         "startTime": "1700000000000"}


def test_http_control_endpoint(sim: ExchangeSimulator) -> None:
    status, _, reply = raw(sim, "/_control", {"op": "add_fault", "exchange": "kraken",
                                              "kind": "exchange_error", "count": 1})
    assert status == 200 and reply["ok"]
    assert raw(sim, "/kraken/0/public/Time")[2] == {"error": ["EService:Unavailable"]}
    raw(sim, "/_control", {"op": "set_clock_offset", "offset_ms": 7000, "exchange": "okx"})
    _, _, state = raw(sim, "/_control")
    assert state["result"]["clock_offset_ms"]["okx"] == 7000
    assert raw(sim, "/_control", {"op": "stop"})[0] == 400        # not a control op


def test_ccxt_config_for_a_simulator_in_another_process(sim: ExchangeSimulator) -> None:
    for ex_id in EXCHANGES:
        assert ccxt_config(sim.base_url + "/", ex_id) == sim.ccxt_config(ex_id)
    with pytest.raises(KeyError):
        ccxt_config(sim.base_url, "bitmex")


def test_dialect_subclass_and_added_control_plane() -> None:
    class CountingBinance(Binance):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def handle(self, req: Request) -> Reply:
            self.seen.append(req.endpoint)
            return super().handle(req)

    binance = CountingBinance()
    with ExchangeSimulator(dialects={"binance": binance}) as server:
        server.add_control("/_extra", {"seen": lambda last=1: binance.seen[-int(last):]})
        assert raw(server, "/binance/api/v3/time")[0] == 200
        server.add_fault("binance", "http_503")
        assert raw(server, "/binance/api/v3/ping")[0] == 503          # faults stay in front
        assert raw(server, "/_extra", {"op": "seen", "last": 5})[2] == {"ok": True, "result": ["time"]}
        status, _, reply = raw(server, "/_extra", {"op": "add_fault"})
        assert status == 400 and not reply["ok"]                      # only the added ops
        with pytest.raises(ValueError):
            server.add_control("/okx", {})
    with pytest.raises(ValueError):
        ExchangeSimulator(dialects={"bitmex": binance})


def test_cli_serves_and_prints_configs() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "--port", "0"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().split()[-1]
        assert base.startswith("http://127.0.0.1:")
        headers = []
        while "okx:" not in headers and len(headers) < 500:
            headers.append(proc.stdout.readline().strip())
        block = [proc.stdout.readline()]
        while block[-1].rstrip() != "    }" and len(block) < 100:
            block.append(proc.stdout.readline())
        assert json.loads("".join(block))["urls"]["api"]["rest"] == base + "/okx"
        with urllib.request.urlopen(base + "/binance/api/v3/time", timeout=5) as resp:
            assert abs(json.load(resp)["serverTime"] - time.time() * 1000) < 5000
    finally:
        proc.terminate()
        proc.wait(timeout=5)
