"""A sink that runs in a process of its own, for HISTORY and audit runs.

A backfill at Binance's full rate hands the store 50,000 candles a second. Formatting and
writing them costs about as much CPU as fetching and parsing them, and inside the worker
process that work would hold the GIL against the event loop that keeps requests in flight:
the rate limit would go unused while a batch is written. In its own process the write runs
on another core, and the worker only pickles the pages' columns (``core/row_batch.py``) and
plain tuples, a small part of the write's cost.

LIVE keeps its sink in-process: a cycle writes a few hundred rows, and a long-running worker
should not carry a second process for that.

The writer process exits when its pipe closes, so it never outlives the worker, even one
killed with SIGKILL. If the writer dies, the call in flight raises ``SinkUnavailable`` (the
worker's retry path) and the next call starts a new one.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from core.config import StorageConfig
from core.row_batch import CandleColumns, RowBatch
from core.series import ROW_TYPES, Row, SeriesKey, rows_by_dataset, series_key
from worker.errors import SinkUnavailable
from worker.sinks.base import WriteResult

log = logging.getLogger(__name__)

# Rows per message. Pickling is one C call that holds the GIL: a 50,000-row batch in one
# message would stall the worker's event loop for tens of milliseconds. A candle page (at most
# an exchange's page, 1,000 bars at Binance) is one message of its own.
CHUNK_ROWS = 2_000


@dataclass(frozen=True)
class WriterLogging:
    """Where the writer process sends its log records: the worker's queue to the supervisor."""

    queue: Any
    exchange: str
    mode: str
    level: str = "INFO"


class OffloadedSink:
    def __init__(self, storage: StorageConfig, *, bulk: bool,
                 logging_to: WriterLogging | None = None) -> None:
        self._storage = storage
        self._bulk = bulk
        self._logging_to = logging_to
        self._lock = threading.Lock()  # one request on the pipe at a time (callers are threads)
        self._conn: Any = None
        self._process: multiprocessing.process.BaseProcess | None = None

    @property
    def pid(self) -> int | None:
        """The writer process, while one runs."""
        return self._process.pid if self._process is not None else None

    # -- the Sink interface ----------------------------------------------------------------

    def ensure(self) -> None:
        self._call("ensure")

    def write(self, rows: Sequence[Row]) -> WriteResult:
        if not rows:
            return WriteResult()
        messages = list(_messages(rows))
        written, rejected = self._call("write", len(messages), then_send=messages)
        return WriteResult(written, [(ROW_TYPES[dataset]._make(row), reason) for dataset, row, reason in rejected])

    def last_timestamps(self, series: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        found = self._call("last_timestamps", [tuple(s) for s in series])
        return {series_key(*key): ms for key, ms in found}

    def stored_timestamps(self, series: SeriesKey, start_ms: int, end_ms: int) -> list[int]:
        return self._call("stored_timestamps", tuple(series), start_ms, end_ms)

    def close(self) -> None:
        with self._lock:
            if self._process is None:
                return
            try:
                self._conn.send(("close", ()))
                self._conn.recv()
            except (EOFError, OSError):
                pass
            self._stop_process()

    # -- the pipe --------------------------------------------------------------------------

    def _call(self, op: str, *args: Any, then_send: Iterable[Any] = ()) -> Any:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start_process()
            try:
                self._conn.send((op, args))
                for message in then_send:
                    self._conn.send(message)
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                code = self._process.exitcode if self._process else None
                self._stop_process()
                raise SinkUnavailable(f"the store's writer process is gone (exit code {code}): "
                                      f"{type(exc).__name__}") from exc
            except BaseException:
                # A request cut short (a row that would not pickle) leaves the writer waiting
                # for the rest of it: start the next call with a new writer.
                self._stop_process()
                raise
        if status == "error":
            raise value
        return value

    def _start_process(self) -> None:
        self._stop_process()
        # spawn, not fork: the worker has threads (logging, the store's own), and a fork
        # copies whatever locks they hold.
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=serve, name="sink-writer", daemon=True,
                              args=(theirs, self._storage, self._bulk, self._logging_to))
        process.start()
        theirs.close()  # the writer's end lives in the writer only: its exit closes the pipe
        self._conn, self._process = ours, process

    def _stop_process(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn = self._process = None


def serve(conn: Any, storage: StorageConfig, bulk: bool, logging_to: WriterLogging | None) -> None:
    """The writer process: one real sink, one request at a time, until the pipe closes."""
    # Ctrl-C reaches the whole process group; the worker decides when its writer stops (it
    # closes the pipe, or terminates it on the way out).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if logging_to is not None:
        from core.logsetup import configure_worker_logging

        configure_worker_logging(logging_to.queue, exchange=logging_to.exchange,
                                 mode=logging_to.mode, level=logging_to.level)
    from worker.sinks.factory import make_local_sink

    sink = make_local_sink(storage, bulk=bulk)
    handlers: dict[str, Callable[..., Any]] = {
        "ensure": sink.ensure,
        "write": lambda messages: _write(sink, _batch(conn.recv() for _ in range(messages))),
        "last_timestamps": lambda keys: list(sink.last_timestamps(series_key(*k) for k in keys).items()),
        "stored_timestamps": lambda key, start, end: sink.stored_timestamps(series_key(*key), start, end),
        "close": sink.close,
    }
    try:
        while True:
            try:
                op, args = conn.recv()
            except (EOFError, OSError):
                break  # the worker is gone or done
            try:
                reply: tuple[str, Any] = ("ok", handlers[op](*args))
            except Exception as exc:  # the worker raises it as if the sink were in-process
                reply = ("error", exc if _picklable(exc) else SinkUnavailable(repr(exc)[:500]))
            conn.send(reply)
            if op == "close":
                break
    finally:
        sink.close()
        logging.shutdown()


def _messages(rows: Sequence[Row]) -> Iterator[CandleColumns | tuple[str, list[tuple]]]:
    """A write as pipe messages, in order: a candle page as its columns, other rows as chunks of
    plain tuples (about three times faster to pickle than named tuples) with their dataset."""
    for part in rows.parts if isinstance(rows, RowBatch) else (rows,):
        if isinstance(part, CandleColumns):
            yield part
            continue
        for dataset, group in rows_by_dataset(part).items():
            for i in range(0, len(group), CHUNK_ROWS):
                yield dataset, [tuple(row) for row in group[i:i + CHUNK_ROWS]]


def _batch(messages: Iterable[CandleColumns | tuple[str, list[tuple]]]) -> RowBatch:
    """The writer's side of :func:`_messages`."""
    batch = RowBatch()
    for message in messages:
        if isinstance(message, CandleColumns):
            batch.add_columns(message)
        else:
            dataset, rows = message
            batch.add_rows(map(ROW_TYPES[dataset]._make, rows))
    return batch


def _write(sink: Any, rows: RowBatch) -> tuple[int, list[tuple[str, tuple, str]]]:
    result = sink.write(rows)
    return result.written, [(row.dataset, tuple(row), reason) for row, reason in result.rejected]


def _picklable(exc: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:
        return False
