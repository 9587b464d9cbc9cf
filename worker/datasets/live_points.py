"""LIVE for the point datasets: each cycle looks back a little and writes what is new.

A funding rate is realized once per funding interval and an open-interest period closes once
per period, so a cycle asks for the recent past (one request per series) and writes a row
only the first time it sees it, or again when the exchange changed its values. The exchange
serves only what has happened, so nothing written here is still changing.
"""

from __future__ import annotations

from typing import Any

from core.series import SeriesKey

# Rows remembered per series: enough to recognise everything a look-back brings again.
REMEMBERED_PER_SERIES = 2_000


class LivePointsPolicy:
    def __init__(self) -> None:
        self._written: dict[SeriesKey, dict[int, tuple]] = {}

    def select(self, series: SeriesKey, points: list[Any]) -> list[Any]:
        """Points never written by this process, or whose values changed since."""
        known = self._written.get(series, {})
        return [p for p in points if known.get(p.timestamp) != tuple(p[1:])]

    def written(self, series: SeriesKey, points: list[Any]) -> None:
        """Call once the rows of ``points`` are stored (or spooled)."""
        known = self._written.setdefault(series, {})
        known.update((p.timestamp, tuple(p[1:])) for p in points)
        if len(known) > REMEMBERED_PER_SERIES:
            for ts in sorted(known)[:len(known) - REMEMBERED_PER_SERIES]:
                del known[ts]

    def forget(self, series: SeriesKey) -> None:
        """The series left the universe; if it comes back, it starts afresh."""
        self._written.pop(series, None)

    def newest(self, series: SeriesKey) -> int | None:
        known = self._written.get(series)
        return max(known) if known else None
