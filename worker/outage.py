"""A store outage as one episode: said once when it starts and once when it ends.

A full disk or a volume gone read-only fails every write until an operator acts. Logging an
error per cycle (or per row) buries the one line that matters, so the first failure of an
episode is the alert (``disk_full`` when the cause is ENOSPC, ``store_unavailable``
otherwise), later failures are counted, and ``store_recovered`` closes the episode.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Callable

from worker.errors import DiskFull

log = logging.getLogger(__name__)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from the file system, or SQLite's SQLITE_FULL (its name for the same thing)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DiskFull) or (isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        seen = seen.__cause__
    return False


class OutageEpisode:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started_at: float | None = None
        self.failures = 0
        self.disk_full = False

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def failed(self, exc: BaseException, *, spooled: int) -> None:
        full = is_disk_full(exc)
        if self.active and (self.disk_full or not full):
            self.failures += 1
            return
        if not self.active:
            self.started_at, self.failures = self._clock(), 1
        self.disk_full = self.disk_full or full
        event = "disk_full" if full else "store_unavailable"
        log.critical("%s: rows are kept in memory (bounded by spool_max_rows, %d now) and written "
                     "when it clears; said once per episode: %s",
                     "disk full" if full else "store unavailable", spooled, exc,
                     extra={"event": event, "spooled": spooled, "error": str(exc)[:300]})

    def succeeded(self, *, delivered: int) -> None:
        if not self.active:
            return
        assert self.started_at is not None
        lasted = self._clock() - self.started_at
        log.warning("store writable again after %.0f s and %d failed writes; %d kept rows delivered",
                    lasted, self.failures, delivered,
                    extra={"event": "store_recovered", "outage_s": round(lasted, 1),
                           "failed_writes": self.failures, "rows": delivered, "disk_full": self.disk_full})
        self.started_at, self.failures, self.disk_full = None, 0, False
