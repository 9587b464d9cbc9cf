"""/healthz freshness (LIVE): stale series listed, 503 once every series of an exchange is stale.

The clock is injected; worker processes are the stand-ins of test_supervisor_decisions.
"""

from __future__ import annotations

import queue

import pytest

from core.config import AppConfig
from core.protocol import Envelope, Heartbeat, SeriesPlan
from core.series import FUNDING_RATES, OPEN_INTEREST, SeriesKey, series_key
from core.telemetry import SeriesFreshness
from supervisor.arbiter import Arbiter
from supervisor.freshness import watched_series
from tests.test_supervisor_decisions import FakeContext, FakeProcess
from worker.live_freshness import LiveFreshness, newest_closed

INTERVAL = 10      # update_interval_seconds
STALE_AFTER = 3    # intervals


@pytest.fixture
def live():
    FakeProcess.started = []
    clock = {"now": 1000.0}
    config = AppConfig.model_validate({
        "settings": {"update_interval_seconds": INTERVAL, "stale_after_intervals": STALE_AFTER,
                     "heartbeat_timeout_intervals": 100},
        "exchanges": {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "1h"]}],
                      "kraken": [{"symbol": "BTC/USD", "timeframes": ["1m"]}]}})
    arbiter = Arbiter(config, mode="live", exchanges=["binance", "kraken"], ctx=FakeContext,
                      log_queue=queue.Queue(), clock=lambda: clock["now"])
    for worker in arbiter.workers.values():
        arbiter.spawn_worker(worker)
    yield arbiter, clock
    for proc in FakeProcess.started:
        proc.exitcode = 0


def stored(arbiter: Arbiter, exchange: str, *entries: tuple[str, str, float]) -> None:
    """The worker reports these series stored at the given times (and a heartbeat)."""
    worker = arbiter.workers[exchange]
    now = arbiter.clock()
    worker.on_message(Envelope(exchange, worker.pid, now, SeriesFreshness(
        [(symbol, tf, "ohlcv", at, int(at * 1000) // 60_000 * 60_000 - 60_000) for symbol, tf, at in entries])), now)
    worker.on_message(Envelope(exchange, worker.pid, now, Heartbeat(last_success=now)), now)


def stale_names(health: dict) -> set[tuple[str, str, str]]:
    return {(s["exchange"], s["symbol"], s["timeframe"]) for s in health["stale_series"]}


def test_a_fresh_collector_is_healthy_and_reports_each_series_last_success(live) -> None:
    arbiter, clock = live
    clock["now"] += 5
    stored(arbiter, "binance", ("BTC/USDT", "1m", clock["now"]), ("BTC/USDT", "1h", clock["now"]))
    stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    health = arbiter.health()
    assert health["status"] == "ok" and health["stale_series"] == []
    series = {(s["symbol"], s["timeframe"]): s for s in health["workers"]["binance"]["series"]}
    assert series[("BTC/USDT", "1m")]["last_success"] == 1005.0
    assert series[("BTC/USDT", "1h")] == {"symbol": "BTC/USDT", "timeframe": "1h", "dataset": "ohlcv",
                                          "last_success": 1005.0, "last_success_age_s": 0.0, "stale": False}


def test_a_series_not_stored_for_the_set_intervals_is_listed_stale_but_the_exchange_stays_up(live) -> None:
    arbiter, clock = live
    stored(arbiter, "binance", ("BTC/USDT", "1m", clock["now"]), ("BTC/USDT", "1h", clock["now"]))
    stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    for _ in range(4):  # 40 s: only the 1m series of binance and kraken keep succeeding
        clock["now"] += INTERVAL
        stored(arbiter, "binance", ("BTC/USDT", "1m", clock["now"]))
        stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    health = arbiter.health()
    assert stale_names(health) == {("binance", "BTC/USDT", "1h")}
    assert health["stale_series"][0]["last_success"] == 1000.0
    assert health["workers"]["binance"]["stale_series"] == 1
    assert health["status"] == "ok"  # one series of binance is still fresh


def test_every_series_of_an_exchange_stale_makes_the_collector_unhealthy(live) -> None:
    arbiter, clock = live
    stored(arbiter, "binance", ("BTC/USDT", "1m", clock["now"]), ("BTC/USDT", "1h", clock["now"]))
    stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    clock["now"] += STALE_AFTER * INTERVAL  # exactly the limit: not yet stale
    stored(arbiter, "binance")  # heartbeats go on, nothing is stored
    stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    assert arbiter.health()["status"] == "ok"
    clock["now"] += 1
    stored(arbiter, "binance")
    stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    health = arbiter.health()
    assert health["status"] == "degraded"
    assert health["workers"]["binance"]["all_series_stale"] is True
    assert health["workers"]["kraken"]["all_series_stale"] is False
    assert stale_names(health) == {("binance", "BTC/USDT", "1m"), ("binance", "BTC/USDT", "1h")}


def test_a_series_never_stored_counts_from_the_worker_start(live) -> None:
    arbiter, clock = live
    clock["now"] += STALE_AFTER * INTERVAL - 1
    stored(arbiter, "kraken", ("BTC/USD", "1m", clock["now"]))
    stored(arbiter, "binance")
    assert arbiter.health()["status"] == "ok"  # just booted: not stale yet
    clock["now"] += 2
    stored(arbiter, "binance")
    health = arbiter.health()
    assert health["status"] == "degraded"
    assert {s["last_success"] for s in health["workers"]["binance"]["series"]} == {None}


def test_history_mode_has_no_freshness(live) -> None:
    arbiter, _ = live
    arbiter.mode = arbiter.mode.HISTORY
    assert "stale_series" not in arbiter.health()


def test_a_symbol_that_left_the_universe_is_neither_watched_nor_served(live) -> None:
    arbiter, clock = live
    stored(arbiter, "binance", ("BTC/USDT", "1m", clock["now"]), ("ETH/USDT", "1m", clock["now"]))
    worker = arbiter.workers["binance"]
    # The next refresh leaves ETH out: the worker's plan no longer has it.
    worker.on_message(Envelope("binance", worker.pid, clock["now"], SeriesPlan(
        [("binance", "BTC/USDT", "1m"), ("binance", "BTC/USDT", "1h")])), clock["now"])
    clock["now"] += STALE_AFTER * INTERVAL * 10
    names = {(s["symbol"], s["timeframe"]) for s in arbiter.health()["workers"]["binance"]["series"]}
    assert names == {("BTC/USDT", "1m"), ("BTC/USDT", "1h")}
    assert ("binance", "ETH/USDT", "1m") not in stale_names(arbiter.health())


def test_funding_and_open_interest_series_are_watched_with_their_dataset() -> None:
    config = AppConfig.model_validate({"exchanges": {"binanceusdm": [
        {"symbol": "BTC/USDT:USDT", "timeframes": ["1h"], "funding_rates": True, "open_interest": ["5m"]}]}})
    arbiter = Arbiter(config, mode="live", exchanges=["binanceusdm"], ctx=FakeContext, log_queue=queue.Queue())
    assert watched_series(arbiter.workers["binanceusdm"]) == [
        ("BTC/USDT:USDT", "1h", "ohlcv"), ("BTC/USDT:USDT", "", "funding_rates"),
        ("BTC/USDT:USDT", "5m", "open_interest")]


def test_live_freshness_knows_which_stored_row_is_a_closed_period() -> None:
    hour = 3_600_000
    now = 100 * hour + 30 * 60_000
    candles, funding = SeriesKey("x", "B/Q", "1h"), series_key("x", "B/Q:Q", "", FUNDING_RATES)
    interest = series_key("x", "B/Q:Q", "1h", OPEN_INTEREST)
    assert newest_closed(candles, 100 * hour, now) == 99 * hour          # stored while open
    assert newest_closed(candles, 99 * hour, now) == 99 * hour
    assert newest_closed(interest, 99 * hour, now) == 99 * hour
    assert newest_closed(funding, 96 * hour + 5, now) is None              # no grid to lag behind
    freshness = LiveFreshness()
    freshness.stored(candles, 10.0, 99 * hour)
    freshness.found_in_store(funding, 96 * hour, now)
    report = freshness.take_report()
    assert report is not None and sorted(report.entries, key=str) == sorted(
        [("B/Q", "1h", "ohlcv", 10.0, 99 * hour), ("B/Q:Q", "", "funding_rates", None, None)], key=str)
    assert freshness.take_report() is None                               # only what changed
