"""Where a HISTORY range stands per series, saved after every durable write.

A backfill killed halfway and started again with the same range continues from here instead
of fetching everything again. Bars before a series' mark are stored (or the exchange has
none); the mark only moves after the store confirmed the write.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

from core.series import SeriesKey, series_key
from core.shards import Shard, state_file_name

log = logging.getLogger(__name__)


class Mark(NamedTuple):
    covered_until: int       # the series is done before this instant
    last_bar: int | None     # the newest bar written, to check that the store still has it


class HistoryCheckpoint:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def for_range(cls, state_dir: str | Path, exchange_id: str, start_ms: int, end_ms: int,
                  store_identity: str, shard: Shard | None = None) -> HistoryCheckpoint:
        """One file per exchange, range and store: progress into one store says nothing of another.

        A shard's file carries the shard (``history-binance-shard1of3-...``)."""
        store = hashlib.sha1(store_identity.encode()).hexdigest()[:10]
        name = state_file_name("history", exchange_id, shard, f"-{start_ms}-{end_ms}-{store}.json")
        return cls(Path(state_dir) / name)

    def load(self) -> dict[SeriesKey, Mark]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
            return {series_key(*e["series"]): Mark(int(e["covered_until"]), e.get("last_bar"))
                    for e in entries}
        except (ValueError, KeyError, TypeError):
            return {}  # unreadable: start over, which costs requests but loses nothing

    def save(self, marks: dict[SeriesKey, Mark]) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps([{"series": list(k), "covered_until": m.covered_until,
                                        "last_bar": m.last_bar} for k, m in sorted(marks.items())]))
            os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one
        except OSError as exc:
            # A full or read-only disk: the store holds the rows; a rerun without this mark
            # fetches again what it already has, which costs requests, not data.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            log.warning("cannot save the HISTORY checkpoint %s: %s", self.path, exc.strerror or exc,
                        extra={"event": "checkpoint_save_error", "error": str(exc)[:300]})
