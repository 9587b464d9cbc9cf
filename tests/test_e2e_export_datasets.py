"""Funding rates and open interest beyond the store: the real CLI exports them as Parquet that
DuckDB reads back equal to the ``_latest`` views, and AUDIT draws them on the coverage page."""

from __future__ import annotations

import time

import pytest

from core.timefmt import epoch_ms
from tests.datasets_support import FUNDING, OPEN_INTEREST, sqlite_points
from tests.e2e_support import Collector, e2e_config, iso_arg

duckdb = pytest.importorskip("duckdb", reason="duckdb (requirements-dev.txt) reads the export back")

HOUR, DAY = 3_600_000, 86_400_000
EX, BTC = "binanceusdm", "BTC/USDT:USDT"


def test_funding_and_open_interest_export_to_parquet_and_draw_on_the_coverage_page(sim, tmp_path) -> None:
    config = e2e_config(tmp_path, sim, {
        EX: [{"symbol": BTC, "timeframes": ["1h"], "funding_rates": True, "open_interest": ["1h"]}]})
    now = int(time.time() * 1000)
    start, end = (now - 2 * DAY) // HOUR * HOUR, (now - 2 * HOUR) // HOUR * HOUR    # hourly columns
    rng = ("--start", iso_arg(start), "--end", iso_arg(end))
    history = Collector(config, "--mode", "history", *rng)
    assert history.wait(120) == 0, history.stderr()[-3000:]

    out = tmp_path / "export"
    export = Collector(config, "--mode", "export", *rng, "--out", str(out))
    assert export.wait(120) == 0, export.stderr()[-3000:]
    assert (out / "funding_rates" / f"exchange={EX}" / "symbol=BTC-USDT_USDT").is_dir()
    assert not list((out / "funding_rates").rglob("timeframe=*"))       # funding has no timeframe level
    for dataset, table in (("funding_rates", FUNDING), ("open_interest", OPEN_INTEREST)):
        files = str(out / dataset / "**" / "*.parquet")
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{files}', hive_partitioning = false)").fetchall()
        columns = [c[0] for c in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{files}')").fetchall()]
        exported = {}
        for row in rows:
            r = dict(zip(columns, row, strict=False))
            ts = epoch_ms(r["timestamp"])
            if dataset == "funding_rates":
                exported[(r["exchange"], r["symbol"], ts)] = (r["funding_rate"],)
            else:
                exported[(r["exchange"], r["symbol"], r["timeframe"], ts)] = (
                    r["open_interest_amount"], r["open_interest_value"])
        stored = sqlite_points(tmp_path / "md.sqlite", table)
        assert exported == stored and stored, dataset

    page = tmp_path / "coverage.html"
    audit = Collector(config, "--mode", "audit", *rng, "--report", str(page))
    assert audit.wait(120) == 0, audit.stderr()[-3000:]
    assert audit.events("coverage_report_written")[0]["series"] == 3
    html = page.read_text()
    assert 'class="c repairable"' not in html and 'class="c not-audited"' not in html
    rows = {label: row for row in html.split("<tr>")[1:] for label in ("funding_rates", "open_interest:1h")
            if f"{EX}:{BTC}:{label}</th>" in row}
    # Hourly columns: each funding time (every 8 h here) fills its hour, the other hours are empty.
    funding_times = len(sqlite_points(tmp_path / "md.sqlite", FUNDING))
    assert rows["funding_rates"].count('class="c complete"') == funding_times
    assert rows["open_interest:1h"].count('class="c complete"') == rows["open_interest:1h"].count('class="c ')
