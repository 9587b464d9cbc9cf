"""The coverage grid as one self-contained HTML page: inline CSS, a table, no network assets.

Every text that comes from the config or a report (symbols, errors) is escaped, so a symbol
such as ``<b>/USDT`` shows as written and never as markup.
"""

from __future__ import annotations

import logging
import os
import time
from html import escape
from pathlib import Path
from typing import Iterable

from core.timefmt import iso_utc
from supervisor.coverage import Cell, CellState, CoverageGrid, SeriesRow, coverage_grid
from supervisor.summaries import configured_series
from supervisor.workers import WorkerHandle

log = logging.getLogger(__name__)

COLOURS = {                      # also read back from screenshots by the browser test
    CellState.COMPLETE: "#2e9e4f",
    CellState.NO_TRADES: "#9ecae1",
    CellState.UNAVAILABLE: "#f0a202",
    CellState.REPAIRABLE: "#d7301f",
    CellState.NOT_AUDITED: "#6b6b6b",
    CellState.EMPTY: "#f2f2f2",
}
LABELS = {
    CellState.COMPLETE: "complete",
    CellState.NO_TRADES: "no trades (the exchange has no bar either)",
    CellState.UNAVAILABLE: "unavailable (the exchange no longer serves it)",
    CellState.REPAIRABLE: "repairable (the exchange serves it: --repair fills it)",
    CellState.NOT_AUDITED: "not audited (see the error)",
    CellState.EMPTY: "no closed bar in this cell",
}
_COUNTED = (CellState.NO_TRADES, CellState.UNAVAILABLE, CellState.REPAIRABLE)

_CSS = """
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 4px}
p.meta{margin:0 0 10px;color:#444}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:0 0 12px}
.legend span{display:inline-flex;align-items:center;gap:5px}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #999}
table.grid{border-collapse:collapse}
table.grid th,table.grid td{padding:0;border:1px solid #fff}
table.grid th.series{position:sticky;left:0;background:#fff;text-align:left;padding:0 8px 0 0;
  white-space:nowrap;font-weight:normal}
table.grid th.col{font-weight:normal;font-size:10px;color:#555;width:14px;min-width:14px}
table.grid td.c{width:14px;min-width:14px;height:18px}
table.grid th.group{font-weight:normal;font-size:11px;color:#333;text-align:left;border-left:1px solid #999;
  padding-left:2px;white-space:nowrap;overflow:hidden;max-width:0}
table.grid .n{padding:0 6px;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.err{color:#b00020}
""" + "".join(f"td.{state.css},.sw.{state.css}{{background:{colour}}}\n" for state, colour in COLOURS.items())


def render_page(grid: CoverageGrid) -> str:
    unit = "hour" if grid.hourly else "day"
    when = "after the repair (the repairable bars found were written)" if grid.after_repair else "as audited"
    head = (f"<h1>Coverage: {len(grid.rows)} series, {escape(iso_utc(grid.start_ms))} to "
            f"{escape(iso_utc(grid.end_ms))}</h1>"
            f"<p class=\"meta\">One column per UTC {unit}; each cell shows the worst state of its bars, "
            f"{escape(when)}. Generated {escape(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}.</p>")
    legend = "<div class=\"legend\">" + "".join(
        f"<span><i class=\"sw {state.css}\"></i>{escape(LABELS[state])}</span>" for state in COLOURS) + "</div>"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Coverage {escape(iso_utc(grid.start_ms))} to {escape(iso_utc(grid.end_ms))}</title>"
            f"<style>{_CSS}</style></head><body>{head}{legend}{_table(grid)}</body></html>\n")


def _table(grid: CoverageGrid) -> str:
    headers = "".join(f"<th class=\"col\" title=\"{escape(iso_utc(c0))}\">{_column_label(c0, grid.hourly)}</th>"
                      for c0, _ in grid.columns)
    counts = "".join(f"<th class=\"n\">{escape(name)}</th>" for name in
                     ("expected", "stored", "no trades", "unavailable", "repairable", "repaired"))
    rows = "".join(_row(row, grid) for row in grid.rows)
    return (f"<table class=\"grid\"><thead>{_group_row(grid)}"
            f"<tr><th class=\"series\">series</th>{headers}{counts}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _group_row(grid: CoverageGrid) -> str:
    """Dates over hour columns, months over day columns."""
    width = 10 if grid.hourly else 7
    groups: list[list] = []
    for c0, _ in grid.columns:
        label = iso_utc(c0)[:width]
        if groups and groups[-1][0] == label:
            groups[-1][1] += 1
        else:
            groups.append([label, 1])
    cells = "".join(f"<th class=\"group\" colspan=\"{span}\">{escape(label)}</th>" for label, span in groups)
    return f"<tr><th class=\"series\"></th>{cells}<th colspan=\"6\"></th></tr>"


def _column_label(start_ms: int, hourly: bool) -> str:
    text = iso_utc(start_ms)
    return text[11:13] if hourly else text[8:10]


def _row(row: SeriesRow, grid: CoverageGrid) -> str:
    cells = "".join(_cell(cell, c0, str(row.series)) for cell, (c0, _) in zip(row.cells, grid.columns, strict=True))
    if row.error:
        numbers = f"<td class=\"n err\" colspan=\"6\">{escape(row.error[:300])}</td>"
    else:
        figures = [row.expected, row.stored, *(row.missing.get(s, 0) for s in _COUNTED), row.repaired]
        numbers = "".join(f"<td class=\"n\">{value:,}</td>" for value in figures)
    return f"<tr><th class=\"series\">{escape(str(row.series))}</th>{cells}{numbers}</tr>"


def _cell(cell: Cell, start_ms: int, series_name: str) -> str:
    detail = ", ".join(f"{count} {LABELS[state].split(' (')[0]}" for state, count in sorted(cell.missing.items()))
    title = f"{series_name} {iso_utc(start_ms)}: {cell.expected} bars expected" + (
        f", missing: {detail}" if detail else "")
    return f"<td class=\"c {cell.state.css}\" title=\"{escape(title)}\"></td>"


def write_coverage_report(path: str, workers: Iterable[WorkerHandle], start_ms: int, end_ms: int, *,
                          repair: bool) -> bool:
    """Write the page for every configured series (atomically: a reader never sees half a page)."""
    results = [(series, worker.audit_results.get(tuple(series)),
                worker.failure or (f"exit code {worker.exit_code}" if worker.exit_code else None))
               for worker in workers for series in configured_series(worker)]
    grid = coverage_grid(results, start_ms, end_ms, repair=repair)
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(render_page(grid), encoding="utf-8")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        log.error("cannot write the coverage report %s: %s", path, exc,
                  extra={"event": "coverage_report_error", "path": path, "error": str(exc)[:300]})
        return False
    log.info("coverage report written to %s (%d series, %d columns)", path, len(grid.rows), len(grid.columns),
             extra={"event": "coverage_report_written", "path": path, "series": len(grid.rows),
                    "columns": len(grid.columns)})
    return True
