"""Never lose a candle: downtime, outages and interrupted backfills, end to end.

The real CLI runs as a subprocess against the exchange simulator (and the BigQuery fake);
afterwards the latest view must equal the simulator's ``truth()`` bar for bar, with no key
twice.
"""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from core.series import OhlcvRow
from core.timefmt import parse_iso_utc
from tests.e2e_support import (
    MINUTE_MS,
    Collector,
    bigquery_env,
    bigquery_latest_view,
    bigquery_storage,
    e2e_config,
    floor_to,
    iso_arg,
    now_ms,
    poll,
    sqlite_latest,
    truth_bars,
    values_of,
)
from worker.sinks.bigquery import insert_id

SERIES = ("binance", "BTC/USDT", "1m")
BINANCE_1M = {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]}


def closed_truth(start_ms: int, until_ms: int) -> dict:
    return truth_bars(SERIES, start_ms, until_ms)


def run_live_until_caught_up(config, read_store, start_ms: int, env=None) -> tuple[dict, int]:
    """LIVE until every bar closed since ``start_ms`` is stored with final values; then SIGTERM."""
    collector = Collector(config, env=env)
    try:
        def caught_up():
            cutoff = floor_to(now_ms() - 3_000, MINUTE_MS)  # bars closed a moment ago
            stored = values_of(read_store().get(SERIES, {}))
            expected = closed_truth(start_ms, cutoff)
            got = {ts: v for ts, v in stored.items() if start_ms <= ts < cutoff}
            return (got, cutoff) if got == expected and expected else None
        result = poll(caught_up, 60, "the store caught up with the exchange")
        assert collector.terminate() == 0
        return result
    finally:
        collector.kill()


@pytest.mark.parametrize("backend", ["sqlite", "bigquery"])
def test_a_restart_after_ten_minutes_of_downtime_repairs_every_bar(sim, tmp_path, backend, request) -> None:
    """Stored up to 10 minutes ago (then the collector was down); LIVE fills the gap on start."""
    env, storage = None, None
    if backend == "bigquery":
        fake = request.getfixturevalue("bigquery_fake")
        env, storage = bigquery_env(fake), bigquery_storage()
        read_store = lambda: bigquery_latest_view(fake)[0]  # noqa: E731
    else:
        read_store = lambda: sqlite_latest(tmp_path / "md.sqlite")  # noqa: E731
    config = e2e_config(tmp_path, sim, BINANCE_1M, storage=storage,
                        settings={"update_interval_seconds": 5, "health_port": 0})
    down_since = floor_to(now_ms(), MINUTE_MS) - 10 * MINUTE_MS
    start = down_since - 60 * MINUTE_MS
    history = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(down_since),
                        env=env)
    assert history.wait(60) == 0
    assert max(read_store()[SERIES]) == max(closed_truth(start, down_since))  # nothing of the downtime yet

    stored, cutoff = run_live_until_caught_up(config, read_store, start, env)
    assert len(stored) == (cutoff - start) // MINUTE_MS - len(
        [ts for ts in range(start, cutoff, MINUTE_MS) if ts not in closed_truth(start, cutoff)])
    if backend == "bigquery":
        assert bigquery_latest_view(fake)[1] == []  # no key twice in the latest view


def test_history_killed_halfway_resumes_with_fewer_requests_and_the_same_result(sim, tmp_path) -> None:
    sim.set_latency(0.05)
    end = floor_to(now_ms(), MINUTE_MS) - 60 * MINUTE_MS
    start = end - 4000 * MINUTE_MS
    settings = {"health_port": 0, "history_page_limit": 100, "history_flush_rows": 100,
                "max_concurrent_requests": 2}
    args = ("--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))

    full = Collector(e2e_config(tmp_path, sim, BINANCE_1M, settings=settings, name="full.yaml",
                                state="full-state"), *args)
    assert full.wait(120) == 0
    full_requests = sim.counters("binance")["endpoint:klines"]
    full_store = values_of(sqlite_latest(tmp_path / "md.sqlite")[SERIES])
    assert full_store == closed_truth(start, end)
    (tmp_path / "md.sqlite").rename(tmp_path / "full.sqlite")
    sim.reset_counters()

    config = e2e_config(tmp_path, sim, BINANCE_1M, settings=settings)
    killed = Collector(config, *args)
    poll(lambda: sim.counters("binance").get("endpoint:klines", 0) >= full_requests // 2, 60,
         "half of the pages")
    time.sleep(0.3)  # let a write land after the last page seen
    killed.kill()  # SIGKILL to the whole process tree, like a container kill
    first_requests = sim.counters("binance")["endpoint:klines"]
    assert first_requests < full_requests

    sim.reset_counters()
    rerun = Collector(config, *args)
    assert rerun.wait(120) == 0
    second_requests = sim.counters("binance")["endpoint:klines"]
    assert second_requests < full_requests * 0.75, (first_requests, second_requests, full_requests)
    assert rerun.events("history_resume")
    assert values_of(sqlite_latest(tmp_path / "md.sqlite")[SERIES]) == full_store


@pytest.mark.slow
def test_a_three_minute_exchange_outage_loses_no_bar(sim, tmp_path) -> None:
    config = e2e_config(tmp_path, sim, BINANCE_1M, settings={"update_interval_seconds": 5, "health_port": 0})
    collector = Collector(config)
    try:
        collector.wait_for(lambda: collector.events("live_cycle_complete"), 30, "a first cycle")
        outage_from = now_ms()
        sim.add_fault("binance", "http_503", duration=180)
        time.sleep(180)
        collector.wait_for(lambda: [l for l in collector.events("gap_repair")
                                    if l.get("rows", 0) > 0], 90, "the gap repair after the outage")
        assert collector.events("fetch_error")
        assert collector.proc.poll() is None  # never went down
        start = floor_to(outage_from, MINUTE_MS) - MINUTE_MS
        read_store = lambda: sqlite_latest(tmp_path / "md.sqlite")  # noqa: E731
        poll(lambda: {ts: v for ts, v in values_of(read_store()[SERIES]).items()
                      if start <= ts < floor_to(outage_from, MINUTE_MS) + 3 * MINUTE_MS}
             == closed_truth(start, floor_to(outage_from, MINUTE_MS) + 3 * MINUTE_MS), 60,
             "every bar of the outage stored with final values")
        assert collector.terminate() == 0
    finally:
        collector.kill()


@pytest.mark.slow
def test_bigquery_outage_then_kill_9_while_rows_are_spooled_loses_nothing(sim, tmp_path, bigquery_fake) -> None:
    config = e2e_config(tmp_path, sim, BINANCE_1M, storage=bigquery_storage(),
                        settings={"update_interval_seconds": 5})
    collector = Collector(config, env=bigquery_env(bigquery_fake))
    try:
        collector.wait_for(lambda: collector.events("live_cycle_complete"), 60, "a first cycle")
        outage_from = now_ms()
        bigquery_fake.add_fault("http_503", op="insertAll", duration=180)
        spool = tmp_path / "state" / "spool-binance.jsonl"
        # Each failed write waits out the default 60 s retry deadline, and a cycle adds one or
        # two rows, so count the cycles that spooled, not the rows.
        collector.wait_for(lambda: len(collector.events("sink_write_error", exchange="binance")) >= 2
                           and spool.exists() and spool.read_text().count("\n") >= 2, 200,
                           "two cycles' rows in the spool")
        psutil.Process(collector.worker_pids()["binance"]).send_signal(signal.SIGKILL)
        collector.wait_for(lambda: len(collector.events("worker_spawned", worker="binance")) >= 2, 30,
                           "the worker restarted")
        collector.wait_for(lambda: collector.events("spool_delivered"), 240, "the spool delivered")
        start = floor_to(outage_from, MINUTE_MS) - MINUTE_MS
        until = floor_to(outage_from, MINUTE_MS) + 3 * MINUTE_MS

        def outage_bars_final():
            store, repeated = bigquery_latest_view(bigquery_fake)
            assert repeated == []
            got = {ts: v for ts, v in values_of(store.get(SERIES, {})).items() if start <= ts < until}
            return got == closed_truth(start, until)
        poll(outage_bars_final, 90, "every bar of the outage in the latest view with final values")
        # a retried row carries the id derived from its key and values, whichever process sent it
        for insert_id_sent, row in bigquery_fake.received_rows("market_data", "market_data_ohlcv"):
            assert insert_id_sent == insert_id(OhlcvRow(
                parse_iso_utc(row["timestamp"]), row["exchange"], row["symbol"], row["timeframe"], row["open"],
                row["high"], row["low"], row["close"], row["volume"], 0))
        assert collector.terminate() == 0
    finally:
        collector.kill()
