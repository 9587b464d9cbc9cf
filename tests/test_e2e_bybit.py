"""Bybit end to end: the real CLI, the real ccxt over HTTP to the simulator's Bybit v5.

Spot and linear-perpetual candles, funding rates and open interest equal the simulator's truth;
a rerun fetches nothing; AUDIT finds nothing to repair; LIVE picks up a closing bar, a new
funding rate and a closed open-interest period (SQLite; once the BigQuery fake). Bybit answers
a kline request that gives only ``start`` with its latest bars, so HISTORY must bound every
page with an end.
"""

from __future__ import annotations

import time

import pytest

from tests.datasets_support import (
    FUNDING,
    OPEN_INTEREST,
    bigquery_points,
    funding_truth,
    open_interest_truth,
    sqlite_points,
)
from tests.e2e_support import (
    HOUR_MS,
    MINUTE_MS,
    Collector,
    bigquery_env,
    bigquery_storage,
    e2e_config,
    floor_to,
    iso_arg,
    now_ms,
    poll,
    sqlite_latest,
    truth_bars,
    truth_diff,
    values_of,
    wait_until_the_open_bar_ends_final,
)

EX = "bybit"
SPOT, SWAP, SOL = "BTC/USDT", "BTC/USDT:USDT", "SOL/USDT:USDT"
DAY_MS = 24 * HOUR_MS


def kline_requests(sim) -> int:
    return sim.counters(EX).get("endpoint:kline", 0)


def run(tmp_path, collectors, config, *args: str) -> Collector:
    collector = Collector(config, *args)
    collectors.append(collector)
    code = collector.wait(180)
    assert code == 0, (code, collector.stderr()[-3000:])
    return collector


def test_spot_and_linear_candle_history_equals_truth_then_rerun_fetches_nothing_and_audit_is_clean(
        sim, tmp_path, collectors) -> None:
    sim.set_rate_limit(EX, enabled=False)
    config = e2e_config(tmp_path, sim, {EX: [{"symbol": SPOT, "timeframes": ["1m"]},
                                             {"symbol": SWAP, "timeframes": ["1m", "1h"]}]})
    start = floor_to(now_ms(), HOUR_MS) - 3 * DAY_MS
    end = floor_to(now_ms(), MINUTE_MS) - 10 * MINUTE_MS
    args = ("--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    history = run(tmp_path, collectors, config, *args)
    assert not history.events("history_unavailable")
    store = sqlite_latest(tmp_path / "md.sqlite")
    for series in ((EX, SPOT, "1m"), (EX, SWAP, "1m"), (EX, SWAP, "1h")):
        stored = values_of(store[series])
        assert truth_diff(stored, truth_bars(series, start, end)) == {}, series
    assert len(store[(EX, SPOT, "1m")]) > 4000
    # 1m: 4,310 bars in pages of 1,000 each; 1h: one page.
    assert kline_requests(sim) <= 2 * 5 + 1 + 3

    before = kline_requests(sim)
    run(tmp_path, collectors, config, *args)
    assert kline_requests(sim) == before                          # a rerun fetches nothing
    assert sqlite_latest(tmp_path / "md.sqlite") == store

    audit = run(tmp_path, collectors, config, "--mode", "audit", "--start", iso_arg(start), "--end", iso_arg(end))
    results = audit.events("audit_summary")
    assert len(results) == 3
    for result in results:
        assert result["repairable"] == 0 and result["error"] is None, result
        assert {g["kind"] for g in result["gaps"]} <= {"no_trades"}, result["gaps"]


def test_funding_and_open_interest_history_equal_truth_and_a_rerun_changes_nothing(sim, tmp_path, collectors) -> None:
    sim.set_rate_limit(EX, enabled=False)
    config = e2e_config(tmp_path, sim, {EX: [
        {"symbol": SWAP, "timeframes": [], "funding_rates": True, "open_interest": ["1h"]},
        {"symbol": SOL, "timeframes": [], "funding_rates": True}]})
    now = now_ms()
    start, end = (now - 100 * DAY_MS) // HOUR_MS * HOUR_MS, (now - 2 * HOUR_MS) // HOUR_MS * HOUR_MS
    args = ("--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    first = run(tmp_path, collectors, config, *args)
    # Bybit serves both back to the listing: nothing of the range is unavailable.
    assert not first.events("history_unavailable")

    store = tmp_path / "md.sqlite"
    funding = sqlite_points(store, FUNDING)
    assert funding == {**funding_truth(EX, SWAP, start, end, end), **funding_truth(EX, SOL, start, end, end)}
    sol, btc = (sum(1 for k in funding if k[1] == symbol) for symbol in (SOL, SWAP))
    assert abs(sol - 2 * btc) <= 2 and btc >= 299                  # every 4 h vs every 8 h, 100 days
    oi = sqlite_points(store, OPEN_INTEREST)
    # A linear contract's open interest is its amount in base currency; Bybit gives no value.
    assert oi == {key: (amount, None) for key, (amount, _) in
                  open_interest_truth(EX, SWAP, "1h", HOUR_MS, start, end, end).items()}
    assert len(oi) == (end - start) // HOUR_MS

    rerun = run(tmp_path, collectors, config, *args)
    assert sqlite_points(store, FUNDING) == funding and sqlite_points(store, OPEN_INTEREST) == oi
    assert not rerun.events("history_unavailable")

    audit = run(tmp_path, collectors, config, "--mode", "audit", "--start", iso_arg(start), "--end", iso_arg(end))
    for result in audit.events("audit_summary"):
        assert result["repairable"] == 0 and result["error"] is None, result


def _next_funding_boundary(now_s: float) -> int:
    step = 8 * 3600
    return int(now_s // step + 1) * step


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("bigquery", marks=pytest.mark.slow)])
def test_live_writes_a_new_funding_rate_and_a_closed_open_interest_period_within_one_interval(
        tmp_path, collectors, request, kind) -> None:
    """The simulator's clock runs 12 s before a funding time, which also closes a 5m period."""
    from simulator import ExchangeSimulator
    from simulator.derivatives import truth_funding, truth_open_interest

    boundary = _next_funding_boundary(time.time())
    shift = boundary - 12 - time.time()
    sim = ExchangeSimulator(now=lambda: time.time() + shift).start()
    request.addfinalizer(sim.stop)
    storage, env, read = None, {}, lambda table: sqlite_points(tmp_path / "md.sqlite", table)
    if kind == "bigquery":
        fake = request.getfixturevalue("bigquery_fake")
        storage, env, read = bigquery_storage(), bigquery_env(fake), lambda table: bigquery_points(fake, table)
    config = e2e_config(tmp_path, sim, {EX: [{"symbol": SWAP, "funding_rates": True, "open_interest": ["5m"]}]},
                        storage=storage)
    live = Collector(config, env=env)
    collectors.append(live)
    live.wait_healthy(30)

    boundary_ms = boundary * 1000
    funding = truth_funding(EX, SWAP, boundary_ms, boundary_ms + 1000, boundary_ms + 1000)
    period = truth_open_interest(EX, SWAP, 300_000, boundary_ms - 300_000, boundary_ms, boundary_ms)
    assert len(funding) == 1 and len(period) == 1
    funding_key, period_key = (EX, SWAP, funding[0][0]), (EX, SWAP, "5m", boundary_ms - 300_000)

    def arrived() -> bool:
        return (read(FUNDING).get(funding_key) == (funding[0][1],)
                and read(OPEN_INTEREST).get(period_key) == (period[0][1], None))

    poll(lambda: time.time() + shift >= boundary, 30, "the funding time on the exchange clock")
    appeared = time.time()
    poll(arrived, 4, "the new funding rate and open-interest period in the store")
    assert time.time() - appeared <= 1 + 2.5   # one interval, plus a cycle's own time
    assert live.terminate() == 0


@pytest.mark.slow
def test_live_over_a_bar_close_stores_closed_bars_final_on_spot_and_linear(sim, tmp_path, collectors) -> None:
    """Up to ~70 s: the bar open at the first sample closes and is stored with its final values."""
    sim.set_rate_limit(EX, enabled=False)
    config = e2e_config(tmp_path, sim, {EX: [{"symbol": SPOT, "timeframes": ["1m"]},
                                             {"symbol": SWAP, "timeframes": ["1m"]}]},
                        settings={"update_interval_seconds": 2})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    path = tmp_path / "md.sqlite"
    series = [(EX, SPOT, "1m"), (EX, SWAP, "1m")]
    open_ts = wait_until_the_open_bar_ends_final(path, series)
    assert collector.terminate() == 0
    store = sqlite_latest(path)
    for key in series:
        closed = {ts: bar for ts, bar in values_of(store[key]).items() if ts <= open_ts}
        assert truth_diff(closed, truth_bars(key, min(closed), open_ts + 1)) == {}, key


def test_a_spot_universe_ranks_spot_pairs_not_the_perpetuals_of_the_same_id(sim, tmp_path, collectors) -> None:
    """ccxt's plain fetch_tickers lists Bybit's perpetuals; a spot universe must rank spot pairs."""
    from tests.shard_support import universe_config

    sim.set_rate_limit(EX, enabled=False)
    for symbol, volume in ((SPOT, 1e8), ("ETH/USDT", 9e9), (SWAP, 5e10), ("SOL/USDT:USDT", 4e10)):
        sim.set_quote_volume(EX, symbol, volume)
    config = universe_config(tmp_path, sim, {EX: {"universe": {
        "quote": ["USDT"], "top": 1, "timeframes": ["1m"], "backfill_hours": 0.1}}})
    collector = Collector(config)
    collectors.append(collector)
    selected = collector.wait_for(lambda: collector.events("universe_selected", exchange=EX), 40, "the universe")
    assert selected[0]["symbols"] == ["ETH/USDT"]
    series = (EX, "ETH/USDT", "1m")
    poll(lambda: sqlite_latest(tmp_path / "md.sqlite").get(series), 30, "ETH/USDT stored")
    assert collector.terminate() == 0
    assert list(sqlite_latest(tmp_path / "md.sqlite")) == [series]
