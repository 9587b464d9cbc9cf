"""Timestamps as text: fixed-width ISO-8601 UTC, so that text order is time order."""

from __future__ import annotations

import time
from datetime import datetime


def iso_utc(ms: int) -> str:
    """``2024-01-01T00:00:00.000Z`` from epoch milliseconds."""
    seconds, millis = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def parse_iso_utc(text: str) -> int:
    """Epoch milliseconds from text written by :func:`iso_utc` (or any ISO-8601 with offset)."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
