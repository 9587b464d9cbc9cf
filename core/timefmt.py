"""Timestamps as text: fixed-width ISO-8601 UTC, so that text order is time order."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def iso_utc(ms: int) -> str:
    """``2024-01-01T00:00:00.000Z`` from epoch milliseconds.

    A HISTORY writer formats 50,000 bar times a second: bars open on whole seconds and rows
    share a few days, so both halves of the text come from small caches.
    """
    days, ms_of_day = divmod(int(ms), 86_400_000)
    if ms_of_day % 1000:
        return _date_prefix(days) + _time_of_day(ms_of_day)
    return _date_prefix(days) + _whole_second(ms_of_day)


def _time_of_day(ms_of_day: int) -> str:
    seconds, millis = divmod(ms_of_day, 1000)
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{millis:03d}Z"


@lru_cache(maxsize=4096)  # a day of 1m bars is 1,440 entries
def _whole_second(ms_of_day: int) -> str:
    return _time_of_day(ms_of_day)


@lru_cache(maxsize=1024)
def _date_prefix(days: int) -> str:
    """``YYYY-MM-DDT`` of a day since the epoch; rows of a batch mostly share a few days."""
    return time.strftime("%Y-%m-%dT", time.gmtime(days * 86_400))


def parse_iso_utc(text: str) -> int:
    """Epoch milliseconds from text written by :func:`iso_utc` (or any ISO-8601 with offset),
    exact to the millisecond: funding times carry milliseconds."""
    return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (``timestamp() * 1000`` is a float product,
    a millisecond short for about one value in 160)."""
    return (moment - _EPOCH) // _MS
