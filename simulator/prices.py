"""Deterministic candle model shared by the exchange simulator and its tests.

Every price is a pure function of ``(exchange, symbol, minute index)``, so the
simulator can serve *any* time range (history or the live clock) without
storing anything, and tests can compute the exact expected answer with
:func:`simulator.truth` instead of snapshotting server output.

One module on purpose: the model below is one chain of pure functions, each step
feeding the next, and is read top to bottom.

Model
-----
* Each hour H starts at log-price L_H: a per-asset trend (sinusoids with
  hashed phases, shared by all venues so BTC/USDT on binance stays close to
  BTC/USD on kraken) plus hashed per-asset and per-venue noise.
* Inside the hour the log-price follows the straight line L_H -> L_{H+1} plus
  a scaled Brownian bridge picked (by hash) from 512 pre-generated templates,
  which also carry per-minute wick sizes and integer volume/trade weights.
  Minute m opens at the path value at m and closes at the value at m+1.
* All served values are integers internally (price ticks, volume units), so
  aggregation is exact and formatting to the exchange's decimal strings is
  lossless; :func:`simulator.markets.fmt_units` is the single formatter used for both serving
  and :func:`truth`, hence ccxt's ``float(str)`` parse yields identical floats.
  (exp/sin come from the platform libm: identical within a machine, which is
  all the simulator/truth comparison needs.)
* Higher timeframes aggregate the 1m bars (first open, max high, min low, last
  close, summed volume). Whole hours are aggregated in one vectorised pass and
  cached, so the first request for 1000 daily bars (1.44M minutes) costs a
  second or two and repeats are instant.
* "Quiet" minutes have no trades and therefore no candle: two hashed minutes
  in every 480-minute block, plus one hashed, 15-minute-aligned quiet block in
  every 14-day block (so 5m/15m bars can be missing too). A bar exists only if
  at least one of its minutes traded. Minutes before the market's listing
  time are quiet as well.
* The open (current) bar is partial: its closed 1m sub-bars plus the current
  minute evaluated at the elapsed fraction ``f`` of that minute (close moves
  from open towards its final value, wicks and volume grow with ``f``), so
  high never decreases, low never increases and volume grows until the bar
  closes, when it equals the :func:`simulator.truth` bar.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Sequence
from functools import cache, lru_cache
from itertools import repeat
from operator import add, mul, sub, truediv

from .markets import MINUTE_MS, Bar, MarketSpec, market

_M64 = (1 << 64) - 1

_BASE_LEVEL = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}


# ---------------------------------------------------------------- hashing --

def _mix(x: int) -> int:
    """splitmix64 finaliser: cheap, stateless, identical on every run."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@cache
def _seed(*parts: str) -> int:
    """Stable 64-bit seed from strings (Python's hash() is salted per run)."""
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(h: int, shift: int) -> float:
    """A uniform float in [0, 1) taken from 20 bits of a hash."""
    return ((h >> shift) & 0xFFFFF) / 1048576.0


# ------------------------------------------------------------ price path --
#
# Hour H has a log-price L_H at its start (asset trend + hashed noise). Inside
# the hour the path is a straight line from L_H to L_{H+1} plus a scaled
# Brownian-bridge template (one of _N_TEMPLATES, hashed per hour), so minute
# bars need no hashing and a whole hour aggregates in one cheap pass: this is
# what keeps 1000 daily bars (1.44M minutes) servable in a second or two.

_PERIODS = (431.0, 4_327.0, 43_201.0, 300_007.0)             # minutes
_AMPLITUDES = (0.006, 0.02, 0.06, 0.15)                       # log-price
_ASSET_NOISE = 0.004                                          # per hour
_VENUE_NOISE = 0.0012                                         # per hour
_N_TEMPLATES = 512


def _make_templates() -> list[tuple[tuple[float, ...], ...]]:
    """Per template: bridge T[0..60], wicks G and D, volume weights V, trades N.

    V and N are integers with their totals appended at index 60, so an hour's
    volume/trade count is exactly the sum over its minutes in O(1).
    """
    rng = random.Random(0x5EED)
    templates = []
    for _ in range(_N_TEMPLATES):
        walk = [0.0]
        for _ in range(60):
            walk.append(walk[-1] + rng.gauss(0.0, 0.0007))
        bridge = tuple(w - walk[60] * j / 60 for j, w in enumerate(walk))
        wick_hi = tuple(0.0009 * rng.random() for _ in range(60))
        wick_lo = tuple(0.0009 * rng.random() for _ in range(60))
        weights = [rng.randrange(100_000, 2_000_000) for _ in range(60)]
        trades = [w // 20_000 + rng.randrange(0, 20) for w in weights]
        templates.append((bridge, wick_hi, wick_lo, tuple(weights) + (sum(weights),),
                          tuple(trades) + (sum(trades),)))
    return templates


_TEMPLATES = _make_templates()


class _Params:
    """Per-market constants, precomputed once because the inner loops are hot."""

    __slots__ = ("spec", "log_base", "waves", "asset", "venue", "quiet", "scale",
                 "volume_factor", "listed_m", "hours")

    def __init__(self, spec: MarketSpec) -> None:
        trend = _seed("trend", spec.base)
        self.spec = spec
        self.log_base = math.log(_BASE_LEVEL[spec.base])
        self.waves = tuple(
            (amp, 2 * math.pi / period, _unit(_mix(trend + k), 0) * 2 * math.pi)
            for k, (period, amp) in enumerate(zip(_PERIODS, _AMPLITUDES, strict=False)))
        self.asset = _seed("asset", spec.base)
        self.venue = _seed("venue", spec.exchange, spec.symbol)
        self.quiet = _seed("quiet", spec.exchange, spec.symbol)
        self.scale = 10 ** spec.price_decimals
        # weight (~1e6) * hour multiplier (~100) * factor ~= base_volume units
        self.volume_factor = max(1, round(spec.base_volume * 10 ** spec.volume_decimals / 1e8))
        self.listed_m = -(-spec.listed_ms // MINUTE_MS)
        self.hours: dict[int, tuple] = {}


_PARAMS: dict[tuple[str, str], _Params] = {}


def _params(spec: MarketSpec) -> _Params:
    key = (spec.exchange, spec.symbol)
    params = _PARAMS.get(key)
    if params is None:
        params = _PARAMS[key] = _Params(spec)
    return params


def _hour_log_price(prm: _Params, hour: int) -> float:
    """Log-price at the start of ``hour``: shared asset trend + venue noise."""
    m = hour * 60
    log_p = prm.log_base
    for amp, omega, phase in prm.waves:
        log_p += amp * math.sin(omega * m + phase)
    log_p += _ASSET_NOISE * (_unit(_mix(prm.asset ^ hour), 7) - 0.5)
    return log_p + _VENUE_NOISE * (_unit(_mix(prm.venue ^ hour), 7) - 0.5)


def _hour(prm: _Params, hour: int) -> tuple:
    """(L_H, slope, scale, template, volume multiplier, quiet set) for an hour."""
    cached = prm.hours.get(hour)
    if cached is None:
        if len(prm.hours) > 500_000:
            prm.hours.clear()
        start = _hour_log_price(prm, hour)
        h = _mix(prm.venue + hour)
        quiet = frozenset(m - hour * 60 for m in _quiet_in(prm, hour * 60, hour * 60 + 60))
        if hour * 60 < prm.listed_m:
            quiet = quiet | frozenset(range(0, min(60, prm.listed_m - hour * 60)))
        cached = (start, _hour_log_price(prm, hour + 1) - start, 0.5 + 1.5 * _unit(h, 0),
                  _TEMPLATES[h % _N_TEMPLATES], 30 + (h >> 24) % 171, quiet)
        prm.hours[hour] = cached
    return cached


def _quiet_in(prm: _Params, start_m: int, end_m: int) -> set[int]:
    """No-trade minutes in [start_m, end_m) (listing aside): see module docstring."""
    quiet: set[int] = set()
    for block in range(start_m // 480, (end_m - 1) // 480 + 1):
        h = _mix(prm.quiet ^ block)
        quiet.update(block * 480 + off for off in (h % 480, (h >> 20) % 480))
    for block in range(start_m // 20_160, (end_m - 1) // 20_160 + 1):
        first = block * 20_160 + (_mix(prm.quiet + block) % 1_344) * 15
        quiet.update(range(first, first + 15))
    return {m for m in quiet if start_m <= m < end_m}


def is_quiet_minute(spec: MarketSpec, m: int) -> bool:
    """True if minute ``m`` had no trades (so no candle exists for it)."""
    return (m % 60) in _hour(_params(spec), m // 60)[5]


def quiet_minutes(exchange: str, symbol: str, start_ms: int, end_ms: int) -> list[int]:
    """Open times (ms) of the no-trade minutes in [start_ms, end_ms)."""
    prm = _params(market(exchange, symbol))
    first, end = -(-start_ms // MINUTE_MS), -(-end_ms // MINUTE_MS)
    found = _quiet_in(prm, max(first, prm.listed_m), end)
    found.update(range(first, min(prm.listed_m, end)))
    return sorted(m * MINUTE_MS for m in found)


def _minute_bar(spec: MarketSpec, m: int, frac: float = 1.0) -> Bar | None:
    """The 1m bar of minute ``m`` after a fraction ``frac`` of it elapsed."""
    prm = _params(spec)
    start, slope, vol, (bridge, wick_hi, wick_lo, weights, trades), vmult, quiet = _hour(prm, m // 60)
    j = m % 60
    if j in quiet:
        return None
    lo = start + slope * j / 60 + vol * bridge[j]
    lc = start + slope * (j + 1) / 60 + vol * bridge[j + 1]
    if frac < 1.0:
        lc = lo + (lc - lo) * frac
    lh = max(lo, lc) + vol * wick_hi[j] * frac
    ll = min(lo, lc) - vol * wick_lo[j] * frac
    scale = prm.scale
    volume, count = weights[j] * vmult, trades[j]
    if frac < 1.0:
        volume, count = int(volume * frac), int(count * frac)
    return (m * MINUTE_MS, round(math.exp(lo) * scale), round(math.exp(lh) * scale),
            round(math.exp(ll) * scale), round(math.exp(lc) * scale),
            volume * prm.volume_factor, count)


def _closed_hour(spec: MarketSpec, hour: int) -> Bar | None:
    """Aggregate of one whole clock hour in a single pass over its minutes.

    Only the extreme log-prices are exponentiated: exp, scaling and round are
    monotone, so this equals aggregating the individually rounded 1m bars
    (tests check this against _minute_bar).
    """
    prm = _params(spec)
    start, slope, vol, (bridge, wick_hi, wick_lo, weights, trades), vmult, quiet = _hour(prm, hour)
    if len(quiet) >= 60:
        return None
    # The same float expressions as _minute_bar, evaluated with map() so the
    # loop runs in C: bit-identical results, ~10x faster than a Python loop.
    n = len(bridge)
    drift = map(truediv, map(mul, repeat(slope, n), range(n)), repeat(60, n))
    path = list(map(add, map(add, repeat(start, n), drift), map(mul, repeat(vol, n), bridge)))
    highs = list(map(add, map(max, path, path[1:]), map(mul, repeat(vol, 60), wick_hi)))
    lows = list(map(sub, map(min, path, path[1:]), map(mul, repeat(vol, 60), wick_lo)))
    traded: Sequence[int] = range(60)
    volume, count = weights[60], trades[60]
    if quiet:
        traded = [j for j in traded if j not in quiet]
        highs = [highs[j] for j in traded]
        lows = [lows[j] for j in traded]
        volume -= sum(weights[j] for j in quiet)
        count -= sum(trades[j] for j in quiet)
    scale = prm.scale
    return (hour * 3_600_000, round(math.exp(path[traded[0]]) * scale),
            round(math.exp(max(highs)) * scale), round(math.exp(min(lows)) * scale),
            round(math.exp(path[traded[-1] + 1]) * scale),
            volume * vmult * prm.volume_factor, count)


def _minute_bars(spec: MarketSpec, start_m: int, end_m: int) -> list[Bar | None]:
    return [_minute_bar(spec, m) for m in range(start_m, end_m)]


def _combine(ts_ms: int, parts: list[Bar | None]) -> Bar | None:
    """Aggregate sub-bars the way exchanges build higher timeframes."""
    bars = [b for b in parts if b is not None]
    if not bars:
        return None
    return (ts_ms, bars[0][1], max(b[2] for b in bars), min(b[3] for b in bars),
            bars[-1][4], sum(b[5] for b in bars), sum(b[6] for b in bars))


def _closed_range(spec: MarketSpec, start_m: int, end_m: int) -> Bar | None:
    """Aggregate of closed minutes [start_m, end_m), using whole hours."""
    first_hour = -(-start_m // 60) * 60
    if first_hour >= end_m:
        return _combine(start_m * MINUTE_MS, _minute_bars(spec, start_m, end_m))
    last_hour = end_m // 60 * 60
    parts = _minute_bars(spec, start_m, first_hour)
    parts += [_closed_hour(spec, h) for h in range(first_hour // 60, last_hour // 60)]
    parts += _minute_bars(spec, last_hour, end_m)
    return _combine(start_m * MINUTE_MS, parts)


@lru_cache(maxsize=100_000)
def _closed_bar(spec: MarketSpec, start_m: int, minutes: int) -> Bar | None:
    return _closed_range(spec, start_m, start_m + minutes)


def bar_at(spec: MarketSpec, start_ms: int, minutes: int, now_ms: int) -> Bar | None:
    """The bar opening at ``start_ms`` as seen at exchange time ``now_ms``.

    Closed bars are cached; the open bar is built from its closed minutes plus
    the current minute at the elapsed fraction. Future bars do not exist.
    """
    start_m = start_ms // MINUTE_MS
    end_m = start_m + minutes
    current_m, elapsed = divmod(now_ms, MINUTE_MS)
    if end_m <= current_m:
        return _closed_bar(spec, start_m, minutes)
    if start_m > current_m:
        return None
    parts = [_closed_range(spec, start_m, current_m) if current_m > start_m else None,
             _minute_bar(spec, current_m, elapsed / MINUTE_MS)]
    return _combine(start_ms, parts)


# ------------------------------------------------------------- timeframes --

def bucket_start(ts_ms: int, minutes: int, offset_minutes: int = 0) -> int:
    """Open time of the bar containing ``ts_ms``.

    ``offset_minutes`` shifts the grid, e.g. OKX's non-"utc" daily bars open
    at 16:00 UTC (UTC+8 midnight), i.e. offset 480.
    """
    size = minutes * MINUTE_MS
    shift = offset_minutes * MINUTE_MS
    return (ts_ms + shift) // size * size - shift


def iter_bars(spec: MarketSpec, minutes: int, from_ms: int, now_ms: int,
              offset_minutes: int = 0, step: int = 1, to_ms: int | None = None) -> Iterator[Bar]:
    """Yield existing bars as seen at ``now_ms``, walking the bar grid.

    ``step=+1``: bars with open time in [from_ms, to_ms], oldest first, ending
    at the current bar. ``step=-1``: bars with open time <= from_ms, newest
    first, ending at the listing time. Quiet bars are skipped.
    """
    size = minutes * MINUTE_MS
    floor_ms = bucket_start(spec.listed_ms, minutes, offset_minutes)
    last_ms = now_ms if to_ms is None else min(now_ms, to_ms)
    ts = bucket_start(from_ms, minutes, offset_minutes)
    if step > 0:
        ts = max(ts + size if ts < from_ms else ts, floor_ms)
    else:
        ts = min(ts, bucket_start(now_ms, minutes, offset_minutes))
    while floor_ms <= ts <= last_ms:
        bar = bar_at(spec, ts, minutes, now_ms)
        if bar is not None:
            yield bar
        ts += size * step
