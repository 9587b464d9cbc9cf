"""AUDIT of funding rates and open interest: the expected rows, what is stored, the gaps.

Open interest is expected on its period grid. Funding is expected on the symbol's funding
interval (8, 4 or 1 hour, read from what the exchange serves), and exchanges report funding
times a few milliseconds off the hour, so a stored or served row matches a grid point within
a second. Gaps are classified as for candles: repairable (the exchange serves them now),
unavailable (older than it keeps), or none served (the exchange has no row there either).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Awaitable, Callable

from core.series import FUNDING_RATES, SeriesKey
from core.timeframes import timeframe_ms
from worker.audit import AuditResult, classify_gaps
from worker.datasets import dataset_for
from worker.exchange import ExchangeClient

HOUR_MS = 3_600_000
DEFAULT_FUNDING_INTERVAL_MS = 8 * HOUR_MS
FUNDING_MATCH_MS = 1_000

StoredTimestamps = Callable[[SeriesKey, int, int], Awaitable[list[int]]]
Write = Callable[[SeriesKey, list[Any]], Awaitable[None]]


def funding_interval_ms(timestamps: list[int]) -> int:
    """The most common spacing of funding times, in whole hours (8 h when too few to tell)."""
    steps = [round((b - a) / HOUR_MS) * HOUR_MS for a, b in zip(timestamps, timestamps[1:])]
    steps = [s for s in steps if s > 0]
    return Counter(steps).most_common(1)[0][0] if steps else DEFAULT_FUNDING_INTERVAL_MS


def expected_grid(start_ms: int, end_ms: int, step_ms: int) -> list[int]:
    first = -(-start_ms // step_ms) * step_ms
    return list(range(first, end_ms, step_ms))


def _matcher(timestamps: list[int], tolerance: int) -> Callable[[int], int | None]:
    by_second = {}
    for ts in timestamps:
        by_second.setdefault(round(ts / 1000), ts)

    def match(grid_ms: int) -> int | None:
        if tolerance == 0:
            return grid_ms if grid_ms in exact else None
        for key in (round(grid_ms / 1000) + d for d in (0, -1, 1)):
            ts = by_second.get(key)
            if ts is not None and abs(ts - grid_ms) <= tolerance:
                return ts
        return None
    exact = set(timestamps)
    return match


async def audit_points(client: ExchangeClient, series: SeriesKey, start_ms: int, end_ms: int, *,
                       page_limit: int, stored_timestamps: StoredTimestamps,
                       repair: Write | None = None) -> AuditResult:
    result = AuditResult(series)
    dataset = dataset_for(series)
    served: dict[int, Any] = {}

    async def keep(_: SeriesKey, points: list[Any]) -> None:
        served.update((p.timestamp, p) for p in points)

    outcome = await dataset.backfill(client, series, start_ms, end_ms, page_limit=page_limit, emit=keep)
    if outcome.error:
        result.error = outcome.error
        return result
    closed_end = min(end_ms, outcome.covered_until)
    stored = await stored_timestamps(series, start_ms, closed_end)
    if series.dataset == FUNDING_RATES:
        step, tolerance = funding_interval_ms(sorted(served) or stored), FUNDING_MATCH_MS
    else:
        step, tolerance = timeframe_ms(series.timeframe), 0
    grid = expected_grid(start_ms, closed_end, step)
    in_store, at_exchange = _matcher(stored, tolerance), _matcher(sorted(served), tolerance)
    missing = [g for g in grid if in_store(g) is None]
    result.expected, result.stored = len(grid), len(grid) - len(missing)
    if series.dataset == FUNDING_RATES:
        result.grid = f"{step // HOUR_MS}h"

    def is_served(grid_ms: int) -> bool:
        return at_exchange(grid_ms) is not None

    # A row of an unavailable stretch may sit up to a step past its end (funding times are
    # reported a little after the hour).
    result.gaps = classify_gaps(missing, step, is_served, outcome.unavailable, unavailable_slack_ms=step)
    repairable = [served[ts] for g in missing if (ts := at_exchange(g)) is not None]
    if repair is not None:
        if repairable:
            await repair(series, repairable)
            result.repaired = len(repairable)
        left = [g for g in missing if at_exchange(g) is None]
        result.after_repair = classify_gaps(left, step, is_served, outcome.unavailable, unavailable_slack_ms=step)
    return result

