"""A progress bar for a HISTORY run when stdout is a terminal: bars of the grid done over all
series of all workers, with rate and ETA, fed by the progress the workers send with their
heartbeats.

Log lines keep flowing above the bar (they are written through tqdm, which clears and redraws
it), except the per-series ``history_progress`` lines, which the bar replaces. Anywhere else
(a pipe, a file, a container log) nothing changes: the JSON ``history_progress`` lines stay.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any, Iterable, TextIO

from tqdm import tqdm

from core.protocol import WorkerState
from supervisor.workers import WorkerHandle

PROGRESS_EVENT = "history_progress"
FALLBACK_COLUMNS = 100


def terminal_columns(stream: TextIO) -> int:
    """The terminal's width, or 0 when it reports none (a pseudo-terminal nobody sized)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 0


class _WriteAboveTheBar:
    """A stream for the stdout log handler: each write goes through ``tqdm.write``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        if text:
            tqdm.write(text, file=self.stream, end="")

    def flush(self) -> None:
        self.stream.flush()


class _DropProgressLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "event", None) != PROGRESS_EVENT


class HistoryProgressBar:
    def __init__(self, stream: TextIO, log_handler: logging.StreamHandler | None = None) -> None:
        self._stream = stream
        self._bar: tqdm | None = None
        self._handler = log_handler
        if log_handler is not None:
            log_handler.setStream(_WriteAboveTheBar(stream))  # type: ignore[arg-type]
            log_handler.addFilter(_DropProgressLines())

    @classmethod
    def on_terminal(cls, stream: TextIO, log_handler: logging.StreamHandler | None) -> HistoryProgressBar | None:
        """A bar when ``stream`` is a terminal, else None."""
        isatty = getattr(stream, "isatty", None)
        return cls(stream, log_handler) if isatty is not None and isatty() else None

    def update(self, workers: Iterable[WorkerHandle]) -> None:
        total = done = series_total = series_done = 0
        for worker in workers:
            progress = worker.telemetry.history
            if progress is None:
                continue
            finished = worker.state in (WorkerState.DONE, WorkerState.FAILED)
            total += progress.bars_total
            done += progress.bars_total if finished else progress.bars_done
            series_total += progress.series_total
            series_done += progress.series_total if finished else progress.series_done
        if total == 0:
            return
        if self._bar is None:
            sized = terminal_columns(self._stream) > 0   # else tqdm would draw nothing
            self._bar = tqdm(total=total, file=self._stream, unit=" bars", unit_scale=True, desc="history",
                             dynamic_ncols=sized, ncols=None if sized else FALLBACK_COLUMNS,
                             nrows=None if sized else 24,
                             smoothing=0.1, mininterval=0.5)
        self._bar.total = total
        self._bar.set_postfix_str(f"{series_done}/{series_total} series", refresh=False)
        self._bar.update(max(0, done - self._bar.n))

    def tick(self, arbiter: Any) -> None:
        """``Arbiter(on_tick=...)``: called once per turn of the supervisor's loop."""
        self.update(arbiter.workers.values())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._handler is not None:
            self._handler.setStream(self._stream)
