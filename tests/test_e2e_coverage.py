"""``--mode audit --report``: the real CLI against the simulator writes a page that a real
browser renders as a grid, with a red hour where bars were lost and none left after --repair."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.timefmt import iso_utc
from simulator import quiet_minutes
from supervisor.coverage import CellState
from supervisor.coverage_page import COLOURS
from tests.e2e_support import Collector, write_config
from tests.headless_browser import find_chromium, screenshot

Image = pytest.importorskip("PIL.Image", reason="Pillow (requirements-dev.txt) reads the screenshot")

# DOCS_SCREENSHOT=path keeps this test's screenshot (docs/coverage.png comes from it).
DOCS_SCREENSHOT = os.environ.get("DOCS_SCREENSHOT")


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_coverage_page_renders_its_grid_in_a_browser(sim, tmp_path) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=24)
    start_ms = int(start.timestamp() * 1000)
    config = write_config(tmp_path / "c.yaml", sim, {"binance": [
        {"symbol": "BTC/USDT", "timeframes": ["1m", "1h"]}, {"symbol": "ETH/USDT", "timeframes": ["1m"]}]},
        settings={"health_port": 0})
    args = ("--start", start.strftime("%Y-%m-%dT%H:%M:%S"), "--end", end.strftime("%Y-%m-%dT%H:%M:%S"))

    def run(*extra: str) -> Collector:
        collector = Collector(config, *extra, *args)
        collector.wait(120)
        return collector

    assert run("--mode", "history").proc.returncode == 0
    with sqlite3.connect(tmp_path / "md.sqlite") as db:   # lose 40 minutes of one series
        db.execute("DELETE FROM market_data_ohlcv WHERE symbol = 'BTC/USDT' AND timeframe = '1m' "
                   "AND timestamp >= ? AND timestamp < ?", (iso_utc(start_ms + 600 * 60_000),
                                                            iso_utc(start_ms + 640 * 60_000)))
    page = tmp_path / "coverage.html"
    audit = run("--mode", "audit", "--report", str(page))
    assert audit.proc.returncode == 1                      # repairable gaps left
    html = page.read_text()
    assert html.count('class="c ') == 3 * 24 and html.count('class="c repairable"') == 1
    quiet = quiet_minutes("binance", "BTC/USDT", start_ms, int(end.timestamp() * 1000))
    assert ('class="c no-trades"' in html) == bool(quiet)
    assert audit.events("coverage_report_written")[0]["series"] == 3

    png = screenshot(page, tmp_path / "coverage.png", width=1100, height=300)
    pixels = Image.open(png).convert("RGB")
    counts = {colour: n for n, colour in pixels.getcolors(maxcolors=1 << 20)}
    seen = set(counts)
    assert rgb(COLOURS[CellState.COMPLETE]) in seen and rgb(COLOURS[CellState.REPAIRABLE]) in seen
    if quiet:
        assert rgb(COLOURS[CellState.NO_TRADES]) in seen
    # a whole red cell (14 x 18 px), not only the legend's swatch
    assert counts[rgb(COLOURS[CellState.REPAIRABLE])] > 14 * 18
    if DOCS_SCREENSHOT:
        shutil.copy(png, Path(DOCS_SCREENSHOT))

    repaired = run("--mode", "audit", "--repair", "--report", str(page))
    assert repaired.proc.returncode == 0
    html = page.read_text()
    assert "after the repair" in html and 'class="c repairable"' not in html
