"""Funding rates end to end on Hyperliquid's perpetuals: the real CLI against the simulator's
info API, into SQLite. Hourly funding, 500 rates a response; no open-interest history."""

from __future__ import annotations

import time

import pytest

from tests.datasets_support import FUNDING, OPEN_INTEREST, funding_truth, sqlite_points
from tests.e2e_support import (
    Collector,
    e2e_config,
    iso_arg,
    poll,
    sqlite_latest,
    truth_bars,
    truth_diff,
    values_of,
)

HOUR, DAY = 3_600_000, 86_400_000
HL, PERP, ETH = "hyperliquid", "BTC/USDC:USDC", "ETH/USDC:USDC"


def test_hyperliquid_history_stores_hourly_funding_500_a_page_and_a_rerun_changes_nothing(sim, tmp_path) -> None:
    config = e2e_config(tmp_path, sim, {HL: [
        {"symbol": PERP, "timeframes": ["1h"], "funding_rates": True},
        {"symbol": ETH, "timeframes": [], "funding_rates": True}]})
    now = int(time.time() * 1000)
    start, end = (now - 30 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR
    args = ("--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    sim.clear_requests()

    first = Collector(config, *args)
    assert first.wait(120) == 0, first.stderr()[-3000:]
    assert not first.events("history_unavailable")          # Hyperliquid keeps all of its funding
    store = tmp_path / "md.sqlite"
    funding = sqlite_points(store, FUNDING)
    assert funding == {**funding_truth(HL, PERP, start, end, end), **funding_truth(HL, ETH, start, end, end)}
    assert len(funding) == 2 * (end - start) // HOUR                     # one rate an hour
    pages = sum(1 for r in sim.requests if r.endpoint == "info/fundingHistory")
    assert pages == 2 * -(-(end - start) // HOUR // 500)                  # 500 a response, 2 symbols
    bars = sqlite_latest(store)[(HL, PERP, "1h")]
    assert truth_diff(values_of(bars), truth_bars((HL, PERP, "1h"), start, end, end)) == {}

    rerun = Collector(config, *args)
    assert rerun.wait(120) == 0, rerun.stderr()[-3000:]
    assert sqlite_points(store, FUNDING) == funding


def test_hyperliquid_open_interest_is_skipped_with_its_reason_and_funding_runs(sim, tmp_path) -> None:
    config = e2e_config(tmp_path, sim, {HL: [
        {"symbol": PERP, "timeframes": [], "funding_rates": True, "open_interest": ["1h"]}]})
    now = int(time.time() * 1000)
    start, end = (now - 3 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR
    run = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    assert run.wait(60) == 1   # a skipped series is not covered
    [skipped] = run.events("series_skipped")
    assert (skipped["exchange"], skipped["dataset"]) == (HL, "open_interest")
    assert "fetchOpenInterestHistory" in skipped["reason"]
    done = {e["dataset"] for e in run.events("history_series_done") if e["status"] == "complete"}
    assert done == {"funding_rates"}
    store = tmp_path / "md.sqlite"
    assert sqlite_points(store, FUNDING) == funding_truth(HL, PERP, start, end, end)
    assert sqlite_points(store, OPEN_INTEREST) == {}


@pytest.mark.slow
def test_hyperliquid_live_writes_the_new_hourly_rate_within_one_interval(tmp_path, collectors, request) -> None:
    """The simulator's clock runs 12 s before the hour, when Hyperliquid's next rate is realized."""
    from simulator import ExchangeSimulator
    from simulator.derivatives import truth_funding

    boundary = int(time.time() // 3600 + 1) * 3600
    shift = boundary - 12 - time.time()
    sim = ExchangeSimulator(now=lambda: time.time() + shift).start()
    request.addfinalizer(sim.stop)
    config = e2e_config(tmp_path, sim, {HL: [{"symbol": PERP, "timeframes": [], "funding_rates": True}]})
    live = Collector(config)
    collectors.append(live)
    live.wait_healthy(30)
    boundary_ms = boundary * 1000
    [(ts, rate)] = truth_funding(HL, PERP, boundary_ms, boundary_ms + 1000, boundary_ms + 1000)
    store = tmp_path / "md.sqlite"
    assert (HL, PERP, ts) not in sqlite_points(store, FUNDING)

    poll(lambda: time.time() + shift >= boundary, 30, "the funding time on the exchange clock")
    appeared = time.time()
    poll(lambda: sqlite_points(store, FUNDING).get((HL, PERP, ts)) == (rate,), 4, "the new rate in the store")
    assert time.time() - appeared <= 1 + 2.5   # one interval, plus a cycle's own time
    assert live.terminate() == 0
