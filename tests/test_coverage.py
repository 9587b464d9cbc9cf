"""The coverage grid built from AUDIT reports, and the page that shows it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from core.protocol import AuditDone, GapKind, GapReport
from core.series import SeriesKey
from supervisor.coverage import CellState, bars_between, columns, coverage_grid
from supervisor.coverage_page import COLOURS, render_page

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)


def gap(start: int, bars: int, kind: GapKind, step: int = MIN) -> GapReport:
    return GapReport(start, start + bars * step, bars, kind, bars if kind == GapKind.REPAIRABLE else 0)


def test_columns_are_hours_under_three_days_and_days_from_three_on() -> None:
    cols, hourly = columns(T0 + 30 * MIN, T0 + 2 * DAY)
    assert hourly and len(cols) == 48 and cols[0] == (T0 + 30 * MIN, T0 + HOUR)
    cols, hourly = columns(T0 + 6 * HOUR, T0 + 3 * DAY + 6 * HOUR)
    assert not hourly and cols == [(T0 + 6 * HOUR, T0 + DAY), (T0 + DAY, T0 + 2 * DAY),
                                   (T0 + 2 * DAY, T0 + 3 * DAY), (T0 + 3 * DAY, T0 + 3 * DAY + 6 * HOUR)]


def test_bars_between_counts_grid_bars_including_calendar_timeframes() -> None:
    assert bars_between(T0, T0 + HOUR, "1m") == 60
    assert bars_between(T0 + 30 * 1000, T0 + HOUR, "1m") == 59
    assert bars_between(T0, T0 + 31 * DAY, "1M") == 1        # March 2024 has 31 days
    assert bars_between(T0, T0 + 7 * DAY, "1w") == 1


def test_a_cell_shows_the_worst_state_of_its_bars_and_the_counts_add_up() -> None:
    series = SeriesKey("binance", "BTC/USDT", "1m")
    report = AuditDone(tuple(series), expected=180, stored=180 - 1 - 2 - 5, repairable=2, repaired=0, gaps=[
        gap(T0 + 5 * MIN, 1, GapKind.NO_TRADES), gap(T0 + 10 * MIN, 2, GapKind.REPAIRABLE),
        gap(T0 + HOUR + 58 * MIN, 5, GapKind.UNAVAILABLE)])      # crosses into the third hour
    failed = SeriesKey("kraken", "ETH/USD", "1h")
    grid = coverage_grid([(series, report, None), (failed, None, "crashed 3 times")], T0, T0 + 3 * HOUR,
                         repair=False)
    row = grid.rows[0]
    assert [c.state for c in row.cells] == [CellState.REPAIRABLE, CellState.UNAVAILABLE, CellState.UNAVAILABLE]
    assert row.cells[0].missing == {CellState.NO_TRADES: 1, CellState.REPAIRABLE: 2}
    assert row.cells[1].missing == {CellState.UNAVAILABLE: 2} and row.cells[2].missing == {CellState.UNAVAILABLE: 3}
    assert row.missing == {CellState.NO_TRADES: 1, CellState.REPAIRABLE: 2, CellState.UNAVAILABLE: 5}
    assert [c.expected for c in row.cells] == [60, 60, 60]
    assert {c.state for c in grid.rows[1].cells} == {CellState.NOT_AUDITED}
    assert grid.rows[1].error == "crashed 3 times"


def test_bars_not_closed_at_the_audit_are_not_counted_as_complete() -> None:
    series = SeriesKey("binance", "BTC/USDT", "1h")
    report = AuditDone(tuple(series), expected=2, stored=2, repairable=0, repaired=0)
    grid = coverage_grid([(series, report, None)], T0, T0 + 3 * HOUR, repair=False)
    assert [c.state for c in grid.rows[0].cells] == [CellState.COMPLETE, CellState.COMPLETE, CellState.EMPTY]


def test_after_a_repair_the_cells_show_what_is_left() -> None:
    series = SeriesKey("binance", "BTC/USDT", "1m")
    no_trades = gap(T0 + 5 * MIN, 1, GapKind.NO_TRADES)
    report = AuditDone(tuple(series), expected=60, stored=57, repairable=0, repaired=2,
                       gaps=[no_trades, gap(T0 + 10 * MIN, 2, GapKind.REPAIRABLE)], after_repair=[no_trades])
    before = coverage_grid([(series, report, None)], T0, T0 + HOUR, repair=False)
    after = coverage_grid([(series, report, None)], T0, T0 + HOUR, repair=True)
    assert before.rows[0].cells[0].state == CellState.REPAIRABLE
    assert after.rows[0].cells[0].state == CellState.NO_TRADES
    assert after.rows[0].stored == 59 and after.rows[0].missing == {CellState.NO_TRADES: 1}
    assert "after the repair" in render_page(after) and "after the repair" not in render_page(before)


def test_the_page_is_self_contained_and_escapes_every_text() -> None:
    evil = SeriesKey("binance", "<script>alert(1)</script>/USDT", "1m")
    report = AuditDone(tuple(evil), expected=60, stored=59, repairable=1, repaired=0,
                       gaps=[gap(T0, 1, GapKind.REPAIRABLE)])
    failed = SeriesKey("okx", "A&B/USDT", "1m")
    page = render_page(coverage_grid([(evil, report, None), (failed, None, '"quoted" <error>')],
                                     T0, T0 + HOUR, repair=False))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;/USDT" in page
    assert "A&amp;B/USDT" in page and "&quot;quoted&quot; &lt;error&gt;" in page
    assert not re.search(r"(src|href)\s*=|url\(|@import|://", page)        # nothing fetched from anywhere
    for colour in COLOURS.values():
        assert colour in page
    assert page.count('class="c ') == 2 and "2024-03-01T00:00:00.000Z" in page
