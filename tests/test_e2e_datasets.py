"""Funding rates and open interest end to end: the real CLI against the simulator's Binance
USDⓈ-M, into SQLite and the BigQuery fake."""

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
    Collector,
    bigquery_env,
    bigquery_storage,
    e2e_config,
    iso_arg,
    poll,
    sqlite_latest,
    truth_bars,
    truth_diff,
    values_of,
)

HOUR, DAY = 3_600_000, 86_400_000
EX, BTC, SOL = "binanceusdm", "BTC/USDT:USDT", "SOL/USDT:USDT"
HL_BTC = "BTC/USDC:USDC"


def _store(kind: str, tmp_path, fake) -> tuple[dict | None, dict, callable]:
    if kind == "sqlite":
        return None, {}, lambda table: sqlite_points(tmp_path / "md.sqlite", table)
    return bigquery_storage(), bigquery_env(fake), lambda table: bigquery_points(fake, table)


@pytest.fixture(params=["sqlite", "bigquery"])
def store_kind(request):
    return request.param


def test_history_stores_the_truth_reports_what_binance_no_longer_serves_and_a_rerun_changes_nothing(
        sim, tmp_path, store_kind, request) -> None:
    fake = request.getfixturevalue("bigquery_fake") if store_kind == "bigquery" else None
    storage, env, read = _store(store_kind, tmp_path, fake)
    config = e2e_config(tmp_path, sim, {
        EX: [{"symbol": BTC, "timeframes": [], "funding_rates": True, "open_interest": ["1h"]},
             {"symbol": SOL, "timeframes": ["1d"], "funding_rates": True}],
    }, storage=storage)
    now = int(time.time() * 1000)
    start, end = (now - 40 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR

    first = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end), env=env)
    assert first.wait(120) == 0, first.stderr()[-3000:]

    unavailable = first.events("history_unavailable", dataset="open_interest")
    assert len(unavailable) == 1 and unavailable[0]["unavailable_from"] == start
    served_from = unavailable[0]["unavailable_until"]
    # Binance keeps 30 days: the reported edge is the first period inside them.
    assert now - 30 * DAY <= served_from <= now - 30 * DAY + HOUR + 60_000

    funding = read(FUNDING)
    expected = {**funding_truth(EX, BTC, start, end, end), **funding_truth(EX, SOL, start, end, end)}
    assert funding == expected
    assert sum(1 for k in funding if k[1] == SOL) > sum(1 for k in funding if k[1] == BTC)  # 4 h vs 8 h
    oi = read(OPEN_INTEREST)
    assert oi == open_interest_truth(EX, BTC, "1h", HOUR, served_from, end, end)
    assert min(k[3] for k in oi) == served_from

    rerun = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end), env=env)
    assert rerun.wait(120) == 0, rerun.stderr()[-3000:]
    assert read(FUNDING) == funding and read(OPEN_INTEREST) == oi

    audit = Collector(config, "--mode", "audit", "--start", iso_arg(start), "--end", iso_arg(end), env=env)
    assert audit.wait(120) == 0, audit.stderr()[-3000:]
    summaries = {(e["symbol"], e.get("timeframe")): e for e in audit.events("audit_summary")}
    funding_audit = summaries[(BTC, "")]
    assert funding_audit["repairable"] == 0 and funding_audit["stored"] == funding_audit["expected"]
    oi_audit = summaries[(BTC, "1h")]
    assert oi_audit["repairable"] == 0 and {g["kind"] for g in oi_audit["gaps"]} == {"unavailable"}


def test_audit_repair_fills_a_deleted_funding_row(sim, tmp_path) -> None:
    import sqlite3

    config = e2e_config(tmp_path, sim, {EX: [{"symbol": SOL, "funding_rates": True, "open_interest": ["4h"]}]})
    now = int(time.time() * 1000)
    start, end = (now - 10 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR
    history = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    assert history.wait(90) == 0, history.stderr()[-3000:]
    store = tmp_path / "md.sqlite"
    full_funding, full_oi = sqlite_points(store, FUNDING), sqlite_points(store, OPEN_INTEREST)
    nth_stamp = "(SELECT timestamp FROM {table} ORDER BY timestamp LIMIT 1 OFFSET {n})"
    with sqlite3.connect(tmp_path / "md.sqlite") as conn:
        conn.execute(f"DELETE FROM {FUNDING} WHERE timestamp = " + nth_stamp.format(table=FUNDING, n=5))
        conn.execute(f"DELETE FROM {OPEN_INTEREST} WHERE timestamp = " + nth_stamp.format(table=OPEN_INTEREST, n=3))

    audit = Collector(config, "--mode", "audit", "--repair", "--start", iso_arg(start), "--end", iso_arg(end))
    assert audit.wait(90) == 0, audit.stderr()[-3000:]
    repaired = {e.get("timeframe"): e["repaired"] for e in audit.events("audit_summary") if "repaired" in e}
    assert repaired == {"": 1, "4h": 1}
    assert sqlite_points(tmp_path / "md.sqlite", FUNDING) == full_funding
    assert sqlite_points(tmp_path / "md.sqlite", OPEN_INTEREST) == full_oi


def test_an_unknown_open_interest_period_is_a_config_error(sim, tmp_path) -> None:
    config = e2e_config(tmp_path, sim, {EX: [{"symbol": BTC, "open_interest": ["3m"]}]})
    run = Collector(config, "--validate-config")
    assert run.wait(30) == 2
    assert "exchanges.binanceusdm.symbols[0].open_interest" in run.stderr() + run.stdout_path.read_text()


def test_a_dataset_the_symbol_or_exchange_lacks_is_skipped_at_start_and_the_rest_runs(sim, tmp_path) -> None:
    config = e2e_config(tmp_path, sim, {
        "binance": [{"symbol": "BTC/USDT", "timeframes": ["1d"], "funding_rates": True}],   # spot
        "kraken": [{"symbol": "BTC/USD", "timeframes": ["1d"], "open_interest": ["1h"]}],   # no such API
        # OKX's days open at Hong Kong midnight, off the UTC grid of every stored period
        "okx": [{"symbol": BTC, "timeframes": ["1d"], "open_interest": ["1d"]}],
        "hyperliquid": [{"symbol": HL_BTC, "timeframes": ["1d"], "open_interest": ["1h"]}],   # current value only
    })
    now = int(time.time() * 1000)
    run = Collector(config, "--mode", "history", "--start", iso_arg(now - 5 * DAY), "--end", iso_arg(now - DAY))
    assert run.wait(60) == 1   # a skipped series is not covered, as for candles
    skipped = {(e["exchange"], e["dataset"]): e["reason"] for e in run.events("series_skipped")}
    assert set(skipped) == {("binance", "funding_rates"), ("kraken", "open_interest"), ("okx", "open_interest"),
                            ("hyperliquid", "open_interest")}
    assert "fetchOpenInterestHistory" in skipped[("hyperliquid", "open_interest")]
    assert "spot" in skipped[("binance", "funding_rates")]
    assert "(it serves 5m, 1h)" in skipped[("okx", "open_interest")]
    done = {(e["exchange"], e["dataset"]) for e in run.events("history_series_done") if e["status"] == "complete"}
    assert done == {("binance", "ohlcv"), ("kraken", "ohlcv"), ("okx", "ohlcv"), ("hyperliquid", "ohlcv")}


def _next_funding_boundary(now_s: float) -> int:
    step = 8 * 3600
    return int(now_s // step + 1) * step


@pytest.mark.parametrize("exchange,kind", [
    (EX, "sqlite"), (EX, "bigquery"), ("okx", "sqlite"), pytest.param("okx", "bigquery", marks=pytest.mark.slow),
    pytest.param("binance", "sqlite", marks=pytest.mark.slow),
    pytest.param("hyperliquid", "sqlite", marks=pytest.mark.slow)])
def test_live_writes_a_new_funding_rate_and_a_closed_open_interest_period_within_one_interval(
        tmp_path, collectors, exchange, kind, request) -> None:
    """The simulator's clock runs 12 s before a funding time, which is also the close of a 5m
    open-interest period; with BigQuery the store is down while they appear. OKX pages its
    funding newest first, Binance oldest first; ``binance`` with a swap symbol uses USDⓈ-M."""
    from simulator import ExchangeSimulator
    from simulator.derivatives import truth_funding, truth_open_interest

    boundary = _next_funding_boundary(time.time())
    shift = boundary - 12 - time.time()
    sim = ExchangeSimulator(now=lambda: time.time() + shift).start()
    request.addfinalizer(sim.stop)
    fake = request.getfixturevalue("bigquery_fake") if kind == "bigquery" else None
    storage, env, read = _store(kind, tmp_path, fake)
    if storage is not None:  # a write gives up quickly, so that the outage reaches the spool
        storage["bigquery"].update(retry_deadline_seconds=2, request_timeout_seconds=2)
    symbol, periods = (HL_BTC, []) if exchange == "hyperliquid" else (BTC, ["5m"])   # no OI history there
    series = {"symbol": symbol, "funding_rates": True, "open_interest": periods}
    config = e2e_config(tmp_path, sim, {exchange: [series]}, storage=storage)
    if exchange == "binance":
        _with_swaps(config)
    live = Collector(config, env=env)
    collectors.append(live)
    live.wait_healthy(30)
    outage = None
    if fake is not None:
        outage = fake.add_fault("http_503", op="insertAll", duration=max(1.0, boundary - (time.time() + shift)) + 6)

    boundary_ms = boundary * 1000
    served_by = EX if exchange == "binance" else exchange   # the same USDⓈ-M market
    funding = truth_funding(served_by, symbol, boundary_ms, boundary_ms + 1000, boundary_ms + 1000)
    period = truth_open_interest(served_by, symbol, 300_000, boundary_ms - 300_000, boundary_ms, boundary_ms)
    assert len(funding) == 1 and len(period) == 1
    funding_key, period_key = (exchange, symbol, funding[0][0]), (exchange, symbol, "5m", boundary_ms - 300_000)

    def arrived() -> bool:
        return (read(FUNDING).get(funding_key) == (funding[0][1],)
                and (not periods or read(OPEN_INTEREST).get(period_key) == tuple(period[0][1:])))

    poll(lambda: time.time() + shift >= boundary, 30, "the funding time on the exchange clock")
    appeared = time.time()
    poll(arrived, 30 if outage else 4, "the new funding rate and open-interest period in the store")
    if outage is None:
        assert time.time() - appeared <= 1 + 2.5   # one interval, plus a cycle's own time
    else:
        assert live.events("sink_write_error"), "the outage never met a write"
        assert live.events("spool_delivered")
    assert live.terminate() == 0


@pytest.mark.slow
def test_okx_history_pages_funding_back_reports_what_it_no_longer_serves_and_audits_clean(sim, tmp_path) -> None:
    """OKX serves funding newest first for 3 months and open interest in 100-period windows."""
    okx = "okx"
    config = e2e_config(tmp_path, sim, {okx: [
        {"symbol": BTC, "timeframes": ["1h"], "funding_rates": True, "open_interest": ["1h"]}]})
    now = int(time.time() * 1000)
    start, end = (now - 100 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR
    args = ("--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))

    first = Collector(config, *args)
    assert first.wait(120) == 0, first.stderr()[-3000:]
    unavailable = first.events("history_unavailable", dataset="funding_rates")
    assert len(unavailable) == 1 and unavailable[0]["unavailable_from"] == start
    served_from = unavailable[0]["unavailable_until"]
    assert now - 90 * DAY <= served_from <= now - 90 * DAY + 60_000

    store = tmp_path / "md.sqlite"
    funding, oi = sqlite_points(store, FUNDING), sqlite_points(store, OPEN_INTEREST)
    assert funding == funding_truth(okx, BTC, served_from, end, end)
    assert oi == open_interest_truth(okx, BTC, "1h", HOUR, start, end, end)
    assert len(oi) == (end - start) // HOUR

    rerun = Collector(config, *args)
    assert rerun.wait(120) == 0, rerun.stderr()[-3000:]
    assert sqlite_points(store, FUNDING) == funding and sqlite_points(store, OPEN_INTEREST) == oi

    audit = Collector(config, "--mode", "audit", "--start", iso_arg(start), "--end", iso_arg(end))
    assert audit.wait(120) == 0, audit.stderr()[-3000:]
    summaries = {(e.get("dataset"), e.get("timeframe")): e for e in audit.events("audit_summary")}
    funding_audit = [e for e in audit.events("audit_summary") if e["symbol"] == BTC and not e.get("timeframe")]
    assert funding_audit and funding_audit[0]["repairable"] == 0
    assert {g["kind"] for g in funding_audit[0]["gaps"]} == {"unavailable"}
    assert all(e["repairable"] == 0 for e in summaries.values())


def _with_swaps(config, exchange: str = "binance"):
    """Let ccxt's ``binance`` load the USDⓈ-M markets too, as it does by default; the
    simulator's ccxt settings keep it to spot for speed."""
    import yaml

    data = yaml.safe_load(config.read_text())
    data["exchanges"][exchange]["ccxt"]["options"]["fetchMarkets"] = {"types": ["spot", "linear"]}
    config.write_text(yaml.safe_dump(data))
    return config


def test_binance_with_a_swap_symbol_collects_the_usdm_market(sim, tmp_path) -> None:
    """``binance`` with BTC/USDT:USDT reaches the same USDⓈ-M endpoints as ``binanceusdm``: the
    rows are the same values, stored under the exchange id the user configured."""
    config = _with_swaps(e2e_config(tmp_path, sim, {"binance": [
        {"symbol": BTC, "timeframes": ["1h"], "funding_rates": True, "open_interest": ["4h"]},
        {"symbol": "BTC/USDT", "timeframes": ["1h"]}]}))
    now = int(time.time() * 1000)
    start, end = (now - 35 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR
    run = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    assert run.wait(120) == 0, run.stderr()[-3000:]
    unavailable = run.events("history_unavailable", dataset="open_interest")
    assert len(unavailable) == 1 and unavailable[0]["unavailable_from"] == start
    served_from = unavailable[0]["unavailable_until"]

    store = tmp_path / "md.sqlite"
    as_binance = lambda points: {("binance", *key[1:]): v for key, v in points.items()}  # noqa: E731
    assert sqlite_points(store, FUNDING) == as_binance(funding_truth(EX, BTC, start, end, end))
    assert sqlite_points(store, OPEN_INTEREST) == as_binance(
        open_interest_truth(EX, BTC, "4h", 4 * HOUR, served_from, end, int(time.time() * 1000)))
    stored = sqlite_latest(store)
    swap, spot = ("binance", BTC, "1h"), ("binance", "BTC/USDT", "1h")
    assert truth_diff(values_of(stored[swap]), truth_bars((EX, BTC, "1h"), start, end, end)) == {}
    assert truth_diff(values_of(stored[spot]), truth_bars(spot, start, end, end)) == {}


@pytest.mark.slow
def test_hyperliquid_history_stores_its_hourly_funding_500_a_page_and_audits_clean(sim, tmp_path) -> None:
    hl = "hyperliquid"
    config = e2e_config(tmp_path, sim, {hl: [{"symbol": HL_BTC, "timeframes": ["1h"], "funding_rates": True}]})
    now = int(time.time() * 1000)
    start, end = (now - 45 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR
    args = ("--start", iso_arg(start), "--end", iso_arg(end))
    sim.clear_requests()
    first = Collector(config, "--mode", "history", *args)
    assert first.wait(120) == 0, first.stderr()[-3000:]
    store = tmp_path / "md.sqlite"
    funding = sqlite_points(store, FUNDING)
    assert funding == funding_truth(hl, HL_BTC, start, end, end) and len(funding) == (end - start) // HOUR
    pages = [r for r in sim.requests if r.endpoint == "info/fundingHistory"]
    assert len(pages) == -(-len(funding) // 500)
    # Only the newest 5,000 hourly candles exist: 45 days of 1h bars are 1,080, all served.
    assert truth_diff(values_of(sqlite_latest(store)[(hl, HL_BTC, "1h")]),
                      truth_bars((hl, HL_BTC, "1h"), start, end, end)) == {}

    rerun = Collector(config, "--mode", "history", *args)
    assert rerun.wait(120) == 0 and sqlite_points(store, FUNDING) == funding
    audit = Collector(config, "--mode", "audit", *args)
    assert audit.wait(120) == 0, audit.stderr()[-3000:]
    assert all(e["repairable"] == 0 and not e["gaps"] for e in audit.events("audit_summary"))
