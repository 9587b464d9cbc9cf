"""The coverage grid of an AUDIT: per series, per day (or hour), the worst state of its bars.

Built from the ``AuditDone`` reports the workers send, so the supervisor needs no store
client: a report says how many bars the grid expects from the range's start on and where
the gaps are, and every bar not in a gap is stored. A cell takes the worst state among its
bars, so one repairable bar in a day shows the whole day red.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from enum import IntEnum

from core.protocol import AuditDone, GapKind, GapReport
from core.series import SeriesKey
from core.timeframes import bar_start, next_bar_start, timeframe_ms

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HOURLY_BELOW_MS = 3 * DAY_MS     # ranges shorter than three days get one column per hour


class CellState(IntEnum):
    """Ordered from best to worst: a cell shows the worst state among its bars."""

    EMPTY = 0          # no closed bar of this timeframe opens in the cell
    COMPLETE = 1
    NO_TRADES = 2
    UNAVAILABLE = 3
    REPAIRABLE = 4
    NOT_AUDITED = 5    # the worker failed or could not fetch the range

    @property
    def css(self) -> str:
        return self.name.lower().replace("_", "-")


GAP_STATE = {GapKind.NO_TRADES: CellState.NO_TRADES, GapKind.UNAVAILABLE: CellState.UNAVAILABLE,
             GapKind.REPAIRABLE: CellState.REPAIRABLE}


@dataclass(frozen=True)
class Cell:
    state: CellState
    expected: int                                       # closed bars opening in the cell
    missing: dict[CellState, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesRow:
    series: SeriesKey
    cells: list[Cell]
    expected: int = 0
    stored: int = 0
    missing: dict[CellState, int] = field(default_factory=dict)
    repaired: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CoverageGrid:
    start_ms: int
    end_ms: int
    columns: list[tuple[int, int]]      # [start, end) of each column, clipped to the range
    hourly: bool
    after_repair: bool                  # the cells show the store once the repair was written
    rows: list[SeriesRow]


def columns(start_ms: int, end_ms: int) -> tuple[list[tuple[int, int]], bool]:
    """UTC days (UTC hours under three days) covering [start, end), clipped to the range."""
    hourly = end_ms - start_ms < HOURLY_BELOW_MS
    step = HOUR_MS if hourly else DAY_MS
    edge = start_ms // step * step
    out = []
    while edge < end_ms:
        out.append((max(edge, start_ms), min(edge + step, end_ms)))
        edge += step
    return out, hourly


def bars_between(start_ms: int, end_ms: int, timeframe: str) -> int:
    """How many bars of the timeframe's grid open in [start, end)."""
    if end_ms <= start_ms:
        return 0
    first = bar_start(start_ms, timeframe)
    if first < start_ms:
        first = next_bar_start(first, timeframe)
    if timeframe[-1] not in "wMy":
        step = timeframe_ms(timeframe)
        return max(0, -(-(end_ms - first) // step))
    count = 0
    while first < end_ms:                   # weeks, months and years: a few bars at most
        count, first = count + 1, next_bar_start(first, timeframe)
    return count


def audited_end(start_ms: int, expected: int, timeframe: str) -> int:
    """End of the last bar the audit expected: bars after it had not closed yet."""
    first = bar_start(start_ms, timeframe)
    if first < start_ms:
        first = next_bar_start(first, timeframe)
    if timeframe[-1] not in "wMy":
        return first + expected * timeframe_ms(timeframe)
    for _ in range(expected):
        first = next_bar_start(first, timeframe)
    return first


def series_row(series: SeriesKey, result: AuditDone | None, failure: str | None, start_ms: int,
               cols: list[tuple[int, int]], *, after_repair: bool) -> SeriesRow:
    if result is None or result.error:
        error = (result.error if result else None) or failure or "not audited"
        return SeriesRow(series, [Cell(CellState.NOT_AUDITED, 0) for _ in cols], error=error)
    gaps: list[GapReport] = result.gaps
    if after_repair and result.after_repair is not None:
        gaps = result.after_repair
    timeframe = result.grid or series.timeframe      # funding rates: their interval
    end = audited_end(start_ms, result.expected, timeframe)
    missing: list[dict[CellState, int]] = [{} for _ in cols]
    starts = [c0 for c0, _ in cols]
    for gap in gaps:
        state = GAP_STATE[GapKind(gap.kind)]
        index = max(0, bisect_right(starts, gap.start_ms) - 1)
        while index < len(cols) and cols[index][0] < gap.end_ms:
            c0, c1 = cols[index]
            count = bars_between(max(c0, gap.start_ms), min(c1, gap.end_ms, end), timeframe)
            if count:
                missing[index][state] = missing[index].get(state, 0) + count
            index += 1
    cells = []
    for (c0, c1), lacks in zip(cols, missing, strict=True):
        expected = bars_between(c0, min(c1, end), timeframe)
        state = max(lacks) if lacks else (CellState.COMPLETE if expected else CellState.EMPTY)
        cells.append(Cell(state, expected, lacks))
    totals: dict[CellState, int] = {}
    for gap in gaps:
        state = GAP_STATE[GapKind(gap.kind)]
        totals[state] = totals.get(state, 0) + gap.missing
    stored = result.stored + (result.repaired if after_repair else 0)
    return SeriesRow(series, cells, result.expected, stored, totals, result.repaired)


def coverage_grid(results: list[tuple[SeriesKey, AuditDone | None, str | None]], start_ms: int,
                  end_ms: int, *, repair: bool) -> CoverageGrid:
    """The grid for every configured series, in the order given (unaudited ones included)."""
    cols, hourly = columns(start_ms, end_ms)
    rows = [series_row(series, result, failure, start_ms, cols, after_repair=repair)
            for series, result, failure in results]
    return CoverageGrid(start_ms, end_ms, cols, hourly, repair, rows)
