"""The checked fast parse of kline pages gives exactly what ccxt's own parse_ohlcvs gives."""

from __future__ import annotations

import math
import random

import ccxt
import pytest

from worker import ohlcv_fast

MINUTE = 60_000
T0 = 1_700_000_040_000


def binance_row(ts: int, rng: random.Random, *, flat: bool = False) -> list:
    o = round(rng.uniform(10, 100), 4)
    h, l, c = (o, o, o) if flat else (o + rng.random(), o - rng.random(), o + rng.uniform(-0.5, 0.5))
    v = round(rng.uniform(0, 50), 3)
    return [ts, f"{o:.8f}", f"{h:.8f}", f"{l:.8f}", f"{c:.8f}", f"{v:.8f}", ts + MINUTE - 1,
            f"{v * o:.8f}", rng.randint(0, 99), f"{v / 2:.8f}", f"{v * o / 2:.8f}", "0"]


def page(n: int, seed: int = 1, **kwargs) -> list[list]:
    rng = random.Random(seed)
    return [binance_row(T0 + i * MINUTE, rng, **kwargs) for i in range(n)]


class Counting:
    """ccxt's own parse_ohlcvs, counting the pages it had to parse."""

    def __init__(self, exchange: ccxt.Exchange) -> None:
        self.original = exchange.parse_ohlcvs
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.original(*args)


def fast_and_slow(exchange: ccxt.Exchange):
    slow = Counting(exchange)
    fast = ohlcv_fast.fast_parse_ohlcvs(exchange, slow)
    return fast, slow


def same(a: list, b: list) -> bool:
    """Equal, NaN included, and the same types (an int timestamp, float prices)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if type(u) is not type(v):
                return False
            if not (u == v or (isinstance(u, float) and math.isnan(u) and math.isnan(v))):
                return False
    return True


SPOT = {"id": "BTCUSDT", "symbol": "BTC/USDT", "type": "spot", "spot": True, "inverse": None}


@pytest.mark.parametrize("since,limit,tail", [(None, None, False), (T0 + 10 * MINUTE, None, False),
                                              (T0 + 10 * MINUTE, 5, False), (None, 7, True),
                                              (None, 1000, False), (T0 - MINUTE, 3, False)])
def test_binance_spot_pages_take_the_fast_path_and_match_ccxt(since, limit, tail) -> None:
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    rows = page(1000)
    assert same(fast(rows, SPOT, "1m", since, limit, tail), slow.original(rows, SPOT, "1m", since, limit, tail))
    assert slow.calls == 0


def test_rows_out_of_order_are_sorted_as_ccxt_sorts_them() -> None:
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    rows = page(50, seed=3)
    random.Random(5).shuffle(rows)
    assert same(fast(rows, SPOT), slow.original(rows, SPOT))
    assert slow.calls == 0


def test_binance_inverse_reads_another_volume_column_so_ccxt_parses_it() -> None:
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    inverse = {**SPOT, "type": "swap", "spot": False, "inverse": True}
    rows = page(100)
    assert same(fast(rows, inverse), slow.original(rows, inverse))
    assert slow.calls == 1


def test_a_layout_is_proven_once_per_market_and_row_width() -> None:
    exchange, reference = ccxt.binance(), ccxt.binance()
    sampled = []
    row_parser = exchange.parse_ohlcv
    exchange.parse_ohlcv = lambda row, market=None: sampled.append(market["id"]) or row_parser(row, market)
    slow = Counting(reference)
    fast = ohlcv_fast.fast_parse_ohlcvs(exchange, slow)
    inverse = {**SPOT, "id": "BTCUSD_PERP", "type": "swap", "spot": False, "inverse": True}
    for seed in (1, 2, 3):
        rows = page(100, seed=seed)
        assert same(fast(rows, SPOT), reference.parse_ohlcvs(rows, SPOT))
    assert sampled and set(sampled) == {"BTCUSDT"} and len(sampled) <= 8       # one page's samples
    assert slow.calls == 0
    for seed in (1, 2):                                         # another market proves its own
        del sampled[:]
        rows = page(100, seed=seed)
        assert same(fast(rows, inverse), reference.parse_ohlcvs(rows, inverse))
        assert sampled and set(sampled) == {"BTCUSD_PERP"}      # not proven (volume is column 7)
    del sampled[:]
    narrower = [row[:9] for row in page(100, seed=4)]            # another width: proven again
    assert same(fast(narrower, SPOT), reference.parse_ohlcvs(narrower, SPOT))
    assert sampled and slow.calls == 2
    del sampled[:]
    mixed = page(100, seed=5)
    mixed[50] = mixed[50][:9]                                   # rows of two widths: ccxt's business
    assert same(fast(mixed, SPOT), reference.parse_ohlcvs(mixed, SPOT))
    assert slow.calls == 3


def test_okx_swap_volume_column_and_kraken_seconds_go_through_ccxt() -> None:
    okx = ccxt.okx()
    fast, slow = fast_and_slow(okx)
    swap = {"id": "BTC-USDT-SWAP", "symbol": "BTC/USDT:USDT", "type": "swap", "spot": False,
            "swap": True, "contract": True, "linear": True}
    rows = [[str(r[0]), r[1], r[2], r[3], r[4], r[5], r[7], r[7], "1"] for r in page(100)]
    assert same(fast(rows, swap), slow.original(rows, swap))
    assert slow.calls == 1

    kraken = ccxt.kraken()
    fast, slow = fast_and_slow(kraken)
    rows = [[r[0] // 1000, r[1], r[2], r[3], r[4], r[7], r[5], 3] for r in page(100)]
    market = {"id": "XBTUSD", "symbol": "BTC/USD", "type": "spot", "spot": True}
    assert same(fast(rows, market), slow.original(rows, market))
    assert slow.calls == 1


def test_okx_spot_strings_take_the_fast_path() -> None:
    okx = ccxt.okx()
    fast, slow = fast_and_slow(okx)
    spot = {"id": "BTC-USDT", "symbol": "BTC/USDT", "type": "spot", "spot": True}
    rows = [[str(r[0]), r[1], r[2], r[3], r[4], r[5], r[7], r[7], "1"] for r in page(300)]
    assert same(fast(rows, spot), slow.original(rows, spot))
    assert slow.calls == 0


def test_numbers_in_every_decimal_spelling_convert_exactly_as_ccxt_converts_them() -> None:
    rng = random.Random(5)
    rows = page(1000)
    for row in rows:
        for k in range(1, 6):
            value = rng.random() * 10 ** rng.randint(-9, 13)
            spelled = rng.choice([repr(value), f"{value:.{rng.randint(0, 12)}f}", f"{value:e}",
                                  str(rng.randint(0, 10**6)), f"{value:.3E}"])
            row[k] = spelled
        row[2] = f"{max(float(v) for v in row[1:5]):.17g}"  # a high that is the page's column 2
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    assert same(fast(rows, SPOT), slow.original(rows, SPOT))
    assert slow.calls == 0


@pytest.mark.parametrize("bad", [None, "", "abc", "NaN", "inf", [1], {"x": 1}, True, " 12.5 ", "1_000", "0x10",
                                 "1e400", 10**400])
def test_a_value_that_will_not_convert_plainly_leaves_the_page_to_ccxt(bad) -> None:
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    rows = page(20)
    rows[7][3] = bad
    assert same(fast(rows, SPOT), slow.original(rows, SPOT))


@pytest.mark.parametrize("mangle", ["short row", "dict row", "not a list", "empty", "null timestamp"])
def test_odd_pages_are_ccxt_s_business(mangle) -> None:
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    rows: object = page(20)
    if mangle == "short row":
        rows[4] = rows[4][:4]
    elif mangle == "dict row":
        rows[4] = {"openTime": T0, "open": "1", "high": "2", "low": "1", "close": "1", "volume": "3"}
    elif mangle == "not a list":
        rows = tuple(rows)
    elif mangle == "empty":
        rows = []
    else:
        rows[0][0] = None
    assert same(fast(rows, SPOT), slow.original(rows, SPOT))
    assert slow.calls == 1


def test_flat_candles_that_cannot_tell_columns_apart_are_parsed_by_ccxt() -> None:
    exchange = ccxt.binance()
    fast, slow = fast_and_slow(exchange)
    rows = page(30, flat=True)
    for row in rows:  # volume equals quote volume and taker volumes: column 5 is ambiguous
        row[5] = row[7] = row[9] = row[10] = "0.00000000"
    assert same(fast(rows, SPOT), slow.original(rows, SPOT))
    assert slow.calls == 1


def test_install_replaces_parse_ohlcvs_on_a_ccxt_exchange_and_ignores_other_objects() -> None:
    exchange = ccxt.binance()
    before = exchange.parse_ohlcvs
    ohlcv_fast.install(exchange)
    assert exchange.parse_ohlcvs != before
    rows = page(10)
    assert same(exchange.parse_ohlcvs(rows, SPOT, "1m", None, None), before(rows, SPOT, "1m", None, None))

    class NotAnExchange:
        pass
    other = NotAnExchange()
    ohlcv_fast.install(other)
    assert not hasattr(other, "parse_ohlcvs")


def test_the_worker_s_ccxt_exchanges_use_the_fast_parse() -> None:
    from worker.exchange import default_factory

    exchange = default_factory("binance")({})
    rows = page(10)
    assert exchange.parse_ohlcvs.__qualname__.startswith("fast_parse_ohlcvs")
    assert same(exchange.parse_ohlcvs(rows, SPOT), ccxt.binance().parse_ohlcvs(rows, SPOT))
