"""Rows the store could not take yet, kept on disk until it can, and rows it never will.

When BigQuery answers 5xx or times out, a LIVE cycle's rows go to a bounded spool file (a
volume in the container) instead of being dropped; the next cycle delivers them first, in
order, with the same insertIds (they are derived from the rows). A worker killed meanwhile
finds them on restart. Rows the store refuses as invalid go to a dead-letter file with the
store's reason, not into an endless retry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from core.series import OHLCV, ROW_TYPES, OhlcvRow, Row

log = logging.getLogger(__name__)


def _encode(row: Row) -> str:
    # Candle rows as a bare list (the format spools have always had); other datasets tagged.
    if row.dataset == OHLCV:
        return json.dumps(list(row), separators=(",", ":"))
    return json.dumps({"dataset": row.dataset, "row": list(row)}, separators=(",", ":"))


def _decode(line: str) -> Row:
    value = json.loads(line)
    if isinstance(value, dict):
        return ROW_TYPES[value["dataset"]](*value["row"])
    return OhlcvRow(*value)


class Spool:
    """An append-only JSON-lines file of rows, oldest first; memory-only without a path."""

    def __init__(self, path: Path | None, max_rows: int) -> None:
        self.path = path
        self.max_rows = max_rows
        self._rows: list[Row] = self._load()
        # False while the file misses rows that memory holds (its disk is full or read-only):
        # the next append rewrites the whole file instead of appending to a torn one.
        self.on_disk = True

    def _load(self) -> list[Row]:
        if self.path is None or not self.path.exists():
            return []
        rows = []
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    rows.append(_decode(line))
                except (ValueError, TypeError, KeyError):
                    continue  # a line torn by a crash mid-append: that row is refetched by repair
        if rows:
            log.warning("found %d spooled rows from an earlier run", len(rows),
                        extra={"event": "spool_loaded", "rows": len(rows)})
        return rows

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[Row]:
        return list(self._rows)

    def append(self, rows: Sequence[Row]) -> list[Row]:
        """Keep what fits; return the rows that did not (gap repair must fetch those again)."""
        room = max(0, self.max_rows - len(self._rows))
        kept, overflow = list(rows[:room]), list(rows[room:])
        self._rows.extend(kept)
        if kept and self.path is not None:
            try:
                self._persist(kept)
            except OSError as exc:
                if self.on_disk:
                    log.error("cannot write the spool file %s (%s): spooled rows are kept in memory "
                              "until it can be written", self.path, exc.strerror or exc,
                              extra={"event": "spool_write_error", "error": str(exc)[:300]})
                self.on_disk = False
        return overflow

    def _persist(self, new_rows: list[OhlcvRow]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.on_disk:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("".join(_encode(r) + "\n" for r in new_rows))
                handle.flush()
                os.fsync(handle.fileno())
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as handle:
                handle.write("".join(_encode(r) + "\n" for r in self._rows))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        self.on_disk = True

    def clear(self) -> None:
        self._rows = []
        self.on_disk = True
        if self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:  # a read-only volume: rows already stored would come again, harmlessly
                log.warning("cannot remove the spool file %s: %s", self.path, exc.strerror or exc,
                            extra={"event": "spool_write_error", "error": str(exc)[:300]})


class DeadLetters:
    """Rows the store refused, with its reason, for a human to look at."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def add(self, rejected: Iterable[tuple[Row, str]]) -> None:
        lines = [json.dumps({"row": row._asdict(), "error": reason}, default=str) + "\n"
                 for row, reason in rejected]
        if not lines or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.writelines(lines)
        except OSError as exc:  # full or read-only disk: the rows are in the log line above
            log.error("cannot write the dead-letter file %s: %s", self.path, exc.strerror or exc,
                      extra={"event": "dead_letters_write_error", "error": str(exc)[:300]})
