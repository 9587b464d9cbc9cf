"""HISTORY end to end: the real CLI and worker processes, the real ccxt over HTTP to the
exchange simulator, and the real stores (SQLite, and the BigQuery fake through the real
google-cloud-bigquery client). Every stored bar is compared with ``truth()``.
"""

from __future__ import annotations

import pytest

from core.timefmt import iso_utc
from tests.e2e_support import (
    HOUR_MS,
    MINUTE_MS,
    Collector,
    Store,
    bigquery_env,
    bigquery_latest_view,
    bigquery_storage,
    bigquery_table_latest,
    e2e_config,
    events_by,
    floor_to,
    in_range,
    iso_arg,
    now_ms,
    series_list,
    sim_candle_pages,
    sqlite_latest,
    truth_bars,
    truth_diff,
    values_of,
)

TIMEFRAMES = ["1m", "5m", "1h"]
FULL = {
    "binance": [{"symbol": "BTC/USDT", "timeframes": TIMEFRAMES}, {"symbol": "ETH/USDT", "timeframes": TIMEFRAMES}],
    "okx": [{"symbol": "BTC/USDT", "timeframes": TIMEFRAMES}, {"symbol": "SOL/USDT", "timeframes": TIMEFRAMES}],
    "kraken": [{"symbol": "BTC/USD", "timeframes": TIMEFRAMES}, {"symbol": "ETH/USD", "timeframes": TIMEFRAMES}],
}
SMALL = {exchange: entries[:1] for exchange, entries in FULL.items()}
KRAKEN_WINDOW = 720  # Kraken serves its latest 720 candles of a timeframe, whatever was asked


def past_range(hours: int) -> tuple[int, int]:
    """[start, end) of whole hours ending an hour ago: every bar in it is closed and final."""
    end = floor_to(now_ms(), HOUR_MS) - HOUR_MS
    return end - hours * HOUR_MS, end


def run_history(sim, tmp_path, collectors, exchanges, start, end, *, storage=None, env=None,
                settings=None, name="c.yaml", state="state") -> tuple[Collector, int, int]:
    """One HISTORY run to completion; returns the collector and when it started and ended."""
    config = e2e_config(tmp_path, sim, exchanges, storage=storage, name=name, state=state,
                        settings={"health_port": 0, **(settings or {})})
    began = now_ms()
    collector = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end),
                          env=env)
    collectors.append(collector)
    code = collector.wait(240)
    assert code == 0, (code, collector.stderr()[-3000:], collector.events("history_summary"))
    return collector, began, now_ms()


def unlimited(sim) -> None:
    """Latency 0 and no simulated rate limits: these tests are about data, not pacing."""
    sim.set_latency(0)
    for exchange in ("binance", "okx", "kraken"):
        sim.set_rate_limit(exchange, enabled=False)


def assert_history_equals_truth(store: Store, collector: Collector, exchanges: dict, start: int,
                                end: int, began: int, ended: int) -> None:
    """Every series equals truth over [start, end), except Kraken's unservable head, which
    must be reported exactly (events and summary) and hold no rows."""
    summary = {(l["exchange"], l["symbol"], l["timeframe"]): l for l in collector.events("history_summary")}
    unavailable = events_by(collector, "history_unavailable", "exchange", "symbol", "timeframe")
    problems = {}
    for series in series_list(exchanges):
        exchange, _, timeframe = series
        step = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "1h": HOUR_MS}[timeframe]
        served_from = start
        if exchange == "kraken" and floor_to(began, step) - (KRAKEN_WINDOW - 1) * step > start:
            # The first bar Kraken served is the oldest of its 720 at the time of the request,
            # or the first after it with trades: a minute without trades has no bar.
            (event,) = unavailable[series]
            served_from = event["unavailable_until"]
            assert floor_to(began, step) - (KRAKEN_WINDOW - 1) * step <= served_from
            latest_window_start = floor_to(ended, step) - (KRAKEN_WINDOW - 1) * step
            assert served_from <= min(truth_bars(series, latest_window_start, end))
            assert event["unavailable_from"] == start
            assert summary[series]["status"] == "partial_unavailable"
            assert summary[series]["unavailable"] == [f"[{iso_utc(start)}, {iso_utc(served_from)})"]
        else:
            assert series not in unavailable, unavailable[series]
            assert summary[series]["status"] == "complete", summary[series]
        stored = values_of(store.get(series, {}))
        diff = truth_diff(stored, truth_bars(series, served_from, end))
        if diff:
            problems[series] = diff
        assert summary[series]["rows"] == len(stored), (series, summary[series]["rows"], len(stored))
    assert not problems, problems
    assert set(store) == set(series_list(exchanges))


def test_history_three_exchanges_into_sqlite_equals_truth(sim, tmp_path, collectors) -> None:
    """Short range, one symbol per exchange: fast enough for every test run."""
    unlimited(sim)
    start, end = past_range(14)        # > 12 h, so Kraken's 720 1m candles cannot cover it
    collector, began, ended = run_history(sim, tmp_path, collectors, SMALL, start, end)
    store = sqlite_latest(tmp_path / "md.sqlite")
    assert_history_equals_truth(store, collector, SMALL, start, end, began, ended)
    assert collector.events("history_complete")[-1]["failed"] == 0


def same_values(a: Store, b: Store) -> bool:
    return {s: values_of(bars) for s, bars in a.items()} == {s: values_of(bars) for s, bars in b.items()}


@pytest.mark.slow
def test_history_two_days_three_exchanges_into_sqlite_and_rerun_changes_nothing(sim, tmp_path, collectors) -> None:
    unlimited(sim)
    start, end = past_range(48)
    collector, began, ended = run_history(sim, tmp_path, collectors, FULL, start, end)
    first = sqlite_latest(tmp_path / "md.sqlite")
    assert_history_equals_truth(first, collector, FULL, start, end, began, ended)
    assert sum(len(first[(e, s, "1m")]) for e, s, _ in series_list(FULL) if e != "kraken") > 4 * 2800

    # The same range again: resumed from the checkpoint, nothing to do, nothing changes.
    run_history(sim, tmp_path, collectors, FULL, start, end, name="again.yaml")
    assert sqlite_latest(tmp_path / "md.sqlite") == first
    # Without the checkpoint every bar is fetched and written again: same keys, same values.
    third, _, _ = run_history(sim, tmp_path, collectors, FULL, start, end, name="fresh.yaml",
                              state="fresh-state")
    rewritten = sqlite_latest(tmp_path / "md.sqlite")
    assert same_values(rewritten, first)
    # rewritten: every bar the exchange still serves (Kraken's 720 1m bars have moved on)
    served_from = {key: lines[0]["unavailable_until"] for key, lines in
                   events_by(third, "history_unavailable", "exchange", "symbol", "timeframe").items()}
    stale = [(s, ts) for s in first for ts in first[s]
             if ts >= served_from.get(s, start) and rewritten[s][ts].ingested_at <= first[s][ts].ingested_at]
    assert stale == []


@pytest.mark.slow
def test_history_into_bigquery_uses_load_jobs_and_the_latest_view_equals_truth(
        sim, tmp_path, collectors, bigquery_fake) -> None:
    unlimited(sim)
    start, end = past_range(48)
    env = bigquery_env(bigquery_fake)
    collector, began, ended = run_history(sim, tmp_path, collectors, FULL, start, end,
                                          storage=bigquery_storage(), env=env)
    view, repeated = bigquery_latest_view(bigquery_fake)
    assert repeated == []
    assert_history_equals_truth(view, collector, FULL, start, end, began, ended)
    assert view == bigquery_table_latest(bigquery_fake)          # the view is the latest per key
    ops = [r.op for r in bigquery_fake.request_log]
    assert "load" in ops and "insertAll" not in ops, sorted(set(ops))
    table_rows = len(bigquery_fake.rows("market_data", "market_data_ohlcv"))
    assert table_rows == sum(len(bars) for bars in view.values())

    # Fetched and loaded again (no checkpoint): a second version of every bar, same latest view.
    second, _, _ = run_history(sim, tmp_path, collectors, FULL, start, end, storage=bigquery_storage(),
                               env=env, name="again.yaml", state="fresh-state")
    again, repeated = bigquery_latest_view(bigquery_fake)
    assert repeated == []
    assert same_values(again, view)
    reloaded = sum(line["rows"] for line in second.events("history_summary"))
    assert reloaded >= table_rows - 10       # Kraken's 1m window may have moved on a minute or two
    assert len(bigquery_fake.rows("market_data", "market_data_ohlcv")) == table_rows + reloaded
    assert "insertAll" not in [r.op for r in bigquery_fake.request_log]


def test_history_rerun_after_the_store_lost_its_rows_backfills_them_again(sim, tmp_path, collectors) -> None:
    """The checkpoint of a finished range must not stand in for rows the store no longer has."""
    unlimited(sim)
    exchanges = {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]}
    series = ("binance", "BTC/USDT", "1m")
    start, end = past_range(6)
    run_history(sim, tmp_path, collectors, exchanges, start, end)
    assert truth_diff(values_of(sqlite_latest(tmp_path / "md.sqlite")[series]), truth_bars(series, start, end)) == {}
    for leftover in tmp_path.glob("md.sqlite*"):
        leftover.unlink()                                   # the operator starts a fresh store
    collector, _, _ = run_history(sim, tmp_path, collectors, exchanges, start, end, name="again.yaml")
    stored = values_of(sqlite_latest(tmp_path / "md.sqlite").get(series, {}))
    summary = collector.events("history_summary")[0]
    assert (summary["status"], summary["rows"]) == ("complete", len(stored))
    assert truth_diff(stored, truth_bars(series, start, end)) == {}


BAD_KINDS = ("bad_null", "bad_negative_volume", "bad_high_low", "bad_offgrid", "bad_duplicate")


def test_history_rejects_bad_rows_and_stores_the_rest_of_each_page(sim, tmp_path, collectors) -> None:
    """Each exchange gets every kind of bad row once, in the middle of a served page."""
    unlimited(sim)
    exchanges = {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]},
                             {"symbol": "ETH/USDT", "timeframes": ["1m"]}],
                 "okx": [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]},
                         {"symbol": "SOL/USDT", "timeframes": ["1m"]}]}
    for exchange in exchanges:
        for kind in BAD_KINDS:
            sim.add_fault(exchange, kind, count=1)
    start, end = past_range(12)
    # 200 bars a page: several pages per series, so every fault lands on a page of its own.
    # One request at a time: pages follow each other (windowed paging has its own test below).
    collector, _, _ = run_history(sim, tmp_path, collectors, exchanges, start, end,
                                  settings={"history_page_limit": 200, "max_concurrent_requests": 1})
    store = sqlite_latest(tmp_path / "md.sqlite")

    rejected = events_by(collector, "candle_rejected", "exchange", "symbol", "timeframe")
    problems = {}
    for exchange in exchanges:
        pages = sim_candle_pages(sim, exchange)
        assert sorted(kind for _, kind, _, _ in pages if kind) == sorted(BAD_KINDS), exchange
        for series in series_list({exchange: exchanges[exchange]}):
            corrupted = set().union(*(bad for s, _, _, bad in pages if s == series))
            # A bar served clean by another page (a page the worker re-asked for) is stored.
            clean = set().union(*(set(rows) - bad for s, _, rows, bad in pages if s == series))
            absent = in_range({ts: 0 for ts in corrupted - clean}, start, end)
            expected = {ts: v for ts, v in truth_bars(series, start, end).items() if ts not in absent}
            diff = truth_diff(values_of(store.get(series, {})), expected)
            if diff:
                problems[series] = diff
            kinds = [kind for s, kind, _, _ in pages if s == series and kind]
            assert len(rejected.get(series, [])) == len(kinds), (series, kinds, rejected.get(series))
    assert not problems, problems
    reasons = " | ".join(l["reason"] for l in collector.events("candle_rejected"))
    for fragment in ("not a finite number", "volume is negative", "high", "not on the 1", "duplicate"):
        assert fragment in reasons, (fragment, reasons)
    # every fault cost exactly its own bar, except the duplicate, whose first copy is valid
    total_absent = sum(len(truth_bars(s, start, end)) - len(store[s]) for s in store)
    assert total_absent == 2 * (len(BAD_KINDS) - 1)


def test_history_windowed_paging_fetches_what_a_short_page_left_out(sim, tmp_path, collectors) -> None:
    """Every page repeats one row: the repeat is rejected, and every bar is still stored."""
    unlimited(sim)
    series = ("binance", "BTC/USDT", "1m")
    sim.add_fault("binance", "bad_duplicate", duration=600)
    start, end = past_range(6)
    body = {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]}
    collector, _, _ = run_history(sim, tmp_path, collectors, body, start, end, settings={"history_page_limit": 20})
    reasons = [l.get("reason", "") for l in collector.events("candle_rejected")]
    assert reasons and all("duplicate" in r for r in reasons)
    summary = collector.events("history_summary")[0]
    stored = values_of(sqlite_latest(tmp_path / "md.sqlite")[series])
    assert (summary["status"], summary["rows"]) == ("complete", len(stored))
    diff = truth_diff(stored, truth_bars(series, start, end))
    assert diff == {}, diff
