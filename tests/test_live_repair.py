"""LIVE after a long outage: the gap repair's rows reach the store even when the store fails
during the repair.

Real parts: ccxt over HTTP against the exchange simulator, the real SQLite store (held locked
by another connection) and the real BigQuery client against the REST fake (answering 503).
The store's retry pauses are shortened; nothing else is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from core.config import ExchangeConfig, Settings
from core.retry import Backoff
from core.series import SeriesKey, to_rows
from core.timefmt import epoch_ms
from simulator import ExchangeSimulator, truth
from tests.e2e_support import BQ_DATASET, BQ_PROJECT
from worker import history_buffer
from worker.exchange import ExchangeClient
from worker.live import LiveCollector
from worker.session import ExchangeSession
from worker.sinks.base import Sink
from worker.spool import DeadLetters, Spool

MINUTE = 60_000
DAY = 86_400_000
SYMBOLS = ("BTC/USDT", "ETH/USDT")
DOWN_FOR_MS = 8 * DAY


def series_of() -> list[SeriesKey]:
    return [SeriesKey("binance", symbol, "1m") for symbol in SYMBOLS]


def seed_before_the_outage(sink: Sink, outage_start_ms: int) -> None:
    """A few bars per series, the last one just before the collector went down."""
    rows = []
    for series in series_of():
        bars = truth("binance", series.symbol, "1m", outage_start_ms - 10 * MINUTE, outage_start_ms)
        rows += to_rows(series, [tuple(bar) for bar in bars], outage_start_ms)
    sink.write(rows)


def make_collector(sim: ExchangeSimulator, sink: Sink, tmp_path: Path) -> LiveCollector:
    exchange = ExchangeConfig(symbols=[{"symbol": s, "timeframes": ["1m"]} for s in SYMBOLS])
    # The repair of two 1m series over eight days is 23,040 rows: more than one HISTORY write
    # (history_flush_rows), fewer than two.
    settings = Settings(max_gap_repair_hours=200, history_flush_rows=20_000, update_interval_seconds=60)
    client = ExchangeClient("binance", {**sim.ccxt_config("binance")},
                            max_concurrent_requests=settings.max_concurrent_requests)
    session = ExchangeSession("binance", exchange, settings, sink, client=client,
                              dead_letters=DeadLetters(tmp_path / "dead.jsonl"))
    return LiveCollector(session, Spool(tmp_path / "spool.jsonl", settings.spool_max_rows))


def assert_store_has_every_served_bar(stored: dict[SeriesKey, list[int]], outage_start_ms: int,
                                      now_ms: int) -> None:
    for series in series_of():
        expected = [bar[0] for bar in truth("binance", series.symbol, "1m", outage_start_ms - 10 * MINUTE,
                                            now_ms - MINUTE, now_ms=now_ms)]
        got = [ts for ts in stored[series] if ts < now_ms - MINUTE]
        missing = sorted(set(expected) - set(got))
        assert not missing, f"{series}: {len(missing)} of {len(expected)} bars missing, first {missing[:3]}"


# The store stays down this long after the repair's fetches end: longer than a write's retries.
OUTAGE_AFTER_REPAIR_S = 5.0


def run_outage_then_recovery(live: LiveCollector, fail_store, heal_store) -> None:
    async def scenario() -> None:
        await live.session.open()
        fail_store()
        try:
            await live.resume_from_store()
            await asyncio.sleep(OUTAGE_AFTER_REPAIR_S)
        finally:
            heal_store()
        await live.cycle()
        await live.cycle()
        await live.session.close()
    asyncio.run(scenario())


@pytest.fixture
def quick_store_retries(monkeypatch):
    """The store's retry pauses in milliseconds: the attempts are the same, the test is quick."""
    monkeypatch.setattr(history_buffer, "SINK_BACKOFF", Backoff(base=0.01, factor=2.0, cap=0.05, attempts=5))


def test_repair_survives_a_locked_sqlite_store(tmp_path, quick_store_retries, caplog) -> None:
    from worker.sinks.sqlite import SqliteSink

    path = tmp_path / "market.sqlite"
    sink = SqliteSink(path, busy_timeout_s=0.4)
    sink.ensure()
    now_ms = int(time.time() * 1000)
    outage_start = (now_ms - DOWN_FOR_MS) // MINUTE * MINUTE
    seed_before_the_outage(sink, outage_start)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    with ExchangeSimulator() as sim, caplog.at_level(logging.INFO):
        live = make_collector(sim, sink, tmp_path)
        run_outage_then_recovery(live, lambda: reader.execute("BEGIN EXCLUSIVE"),
                                 lambda: reader.execute("ROLLBACK"))
    reader.close()

    check = SqliteSink(path)
    stored = {s: check.stored_timestamps(s, outage_start - 10 * MINUTE, now_ms) for s in series_of()}
    check.close()
    assert_store_has_every_served_bar(stored, outage_start, now_ms)
    assert any(getattr(r, "event", None) == "sink_write_error" for r in caplog.records), \
        "the failed write during the repair is logged"


def test_repair_survives_bigquery_answering_503(tmp_path, quick_store_retries, caplog, monkeypatch,
                                                bigquery_fake) -> None:
    from worker.sinks.bigquery import BigQuerySink

    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_fake.base_url)
    sink = BigQuerySink(project=BQ_PROJECT, dataset=BQ_DATASET, table="market_data_ohlcv",
                        location="US", request_timeout_s=5, retry_deadline_s=0.5)
    sink.ensure()
    now_ms = int(time.time() * 1000)
    outage_start = (now_ms - DOWN_FOR_MS) // MINUTE * MINUTE
    seed_before_the_outage(sink, outage_start)

    with ExchangeSimulator() as sim, caplog.at_level(logging.INFO):
        live = make_collector(sim, sink, tmp_path)
        run_outage_then_recovery(live, lambda: bigquery_fake.add_fault("http_503", op="insertAll"),
                                 bigquery_fake.clear_faults)

    stored: dict[SeriesKey, list[int]] = {s: [] for s in series_of()}
    for row in bigquery_fake.rows(BQ_DATASET, "market_data_ohlcv"):
        stored[SeriesKey(row["exchange"], row["symbol"], row["timeframe"])].append(
            epoch_ms(row["timestamp"]))
    assert_store_has_every_served_bar(stored, outage_start, now_ms)
    assert any(getattr(r, "event", None) == "sink_write_error" for r in caplog.records)
