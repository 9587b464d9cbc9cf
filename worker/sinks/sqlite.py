"""The embedded store: one SQLite file shared by every worker process.

WAL mode lets readers and one writer work at once, and ``busy_timeout`` makes the worker
processes queue for the write lock instead of failing. The primary key makes a rewritten bar
replace the old version (the latest write wins), so the table is its own latest view.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from itertools import chain, repeat
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from core.row_batch import CandleColumns, RowBatch
from core.series import OHLCV, OhlcvRow, Row, SeriesKey, rows_by_dataset, series_key
from core.timefmt import iso_utc, parse_iso_utc
from worker.errors import DiskFull, SinkRejected, SinkUnavailable
from worker.sinks import sqlite_datasets as datasets
from worker.sinks.base import COLUMNS, LATEST_VIEW_NAME, TABLE_NAME, WriteResult
from worker.sinks.tables import POINT_TABLES

# Workers opening a new file together take turns switching it to WAL; each turn is short.
WAL_SWITCH_RETRY_S = 0.01
# SQLite checkpoints the WAL into the file every 1,000 pages (4 MB) but never shrinks it; a
# reader that holds a transaction for minutes keeps the checkpoint from reaching the end, and
# the WAL grows meanwhile. Past this size the writer asks for a TRUNCATE checkpoint after its
# commit (without waiting: busy_timeout 0), which succeeds once the reader has left.
WAL_TRUNCATE_BYTES = 8 * 2**20
SQLITE_FULL = 13

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE_NAME} (
    timestamp   TEXT NOT NULL,
    exchange    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    timeframe   TEXT NOT NULL,
    open        REAL NOT NULL,
    high        REAL NOT NULL,
    low         REAL NOT NULL,
    close       REAL NOT NULL,
    volume      REAL NOT NULL,
    ingested_at TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, timestamp)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS {LATEST_VIEW_NAME} AS SELECT {", ".join(COLUMNS)} FROM {TABLE_NAME};
"""

_UPSERT = (
    f"INSERT INTO {TABLE_NAME} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (exchange, symbol, timeframe, timestamp) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[4:])
)

# Candle pages come in time order per series, so a block of their rows lands in one or two
# places of the primary key's B-tree, and one statement of BLOCK_ROWS rows costs about a
# quarter less CPU than as many one-row statements. Rows in no key order, as a LIVE cycle over
# thousands of series writes them, cost about a quarter more that way: they keep one statement
# per row.
BLOCK_ROWS = 100
_ONE_ROW = f"({', '.join('?' * len(COLUMNS))})"
_UPSERT_BLOCK = _UPSERT.replace(f"VALUES {_ONE_ROW}", "VALUES " + ", ".join([_ONE_ROW] * BLOCK_ROWS))


class SqliteSink:
    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()  # one connection, used from the worker's writer thread
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file where the directory should be, no permission
                raise SinkUnavailable(f"sqlite {self.path}: cannot create its directory: {exc}") from exc
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s,
                                   isolation_level=None, check_same_thread=False)
            try:
                self._switch_to_wal(conn)
                # NORMAL is durable across process crashes in WAL mode; only power loss can
                # drop the last transactions, which gap repair fetches again.
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _switch_to_wal(self, conn: sqlite3.Connection) -> None:
        """Put the file in WAL mode, waiting for workers that open a new file at the same time.

        SQLite can refuse a journal-mode change that meets another connection's lock at once
        with "database is locked" instead of waiting out busy_timeout: connections that both
        hold a read lock and both want the write lock cannot wait for each other. So it is
        asked again here, within the same timeout.
        """
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(WAL_SWITCH_RETRY_S)

    def ensure(self) -> None:
        with self._lock:
            conn = None
            try:
                conn = self._connection()
                # The write lock first, so that workers creating the schema together queue on
                # busy_timeout; a read upgraded to a write mid-script fails at once instead.
                conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} {datasets.schema_sql()} COMMIT;")
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    self._rollback(conn)
                raise self._store_error(exc) from exc

    def write(self, rows: Sequence[Row]) -> WriteResult:
        """One transaction per batch (one fsync instead of one per row), whatever its datasets."""
        if not rows:
            return WriteResult()
        candles, others = self._split(rows)
        with self._lock:
            conn = None
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for part in candles:
                        if isinstance(part, CandleColumns):
                            self._upsert_page(conn, part)
                        else:
                            conn.executemany(_UPSERT, part)
                    for dataset, dataset_rows in others.items():
                        datasets.write(conn, dataset, dataset_rows)
                    conn.execute("COMMIT")
                except BaseException:
                    # Whatever failed (a store error, a value that would not format), the
                    # connection must leave the transaction: the next write begins its own.
                    self._rollback(conn)
                    raise
            except sqlite3.DatabaseError as exc:
                raise self._store_error(exc) from exc
            self._shrink_wal(conn)
        return WriteResult(written=len(rows))

    def _split(self, rows: Sequence[Row]) -> tuple[list[CandleColumns | list[tuple]], dict[str, list[Row]]]:
        """The candles in order (the latest version of a bar is written last): pages as they
        came, other candle rows as parameters; and the other datasets' rows."""
        candles: list[CandleColumns | list[tuple]] = []
        others: dict[str, list[Row]] = {}
        for part in rows.parts if isinstance(rows, RowBatch) else (rows,):
            if isinstance(part, CandleColumns):
                candles.append(part)
                continue
            groups = rows_by_dataset(part)
            candles.append(self._candle_params(groups.pop(OHLCV, ())))
            for dataset, dataset_rows in groups.items():
                others.setdefault(dataset, []).extend(dataset_rows)
        return candles, others

    @classmethod
    def _upsert_page(cls, conn: sqlite3.Connection, page: CandleColumns) -> None:
        params = list(cls._page_params(page))
        whole = len(params) - len(params) % BLOCK_ROWS
        # The values of BLOCK_ROWS rows at a time: one flat iterator, zipped with itself (in C).
        values = chain.from_iterable(params[:whole])
        conn.executemany(_UPSERT_BLOCK, zip(*[values] * (BLOCK_ROWS * len(COLUMNS))))
        conn.executemany(_UPSERT, params[whole:])

    @staticmethod
    def _candle_params(rows: Sequence[OhlcvRow]) -> list[tuple]:
        # A batch shares one or a few ingestion times: format each once, not once per row.
        ingested = {ms: iso_utc(ms) for ms in {r[-1] for r in rows}}
        return [(iso_utc(ts), exchange, symbol, timeframe, o, h, l, c, v, ingested[at])
                for ts, exchange, symbol, timeframe, o, h, l, c, v, at in rows]

    @staticmethod
    def _page_params(page: CandleColumns) -> Iterator[tuple]:
        """A page's parameters built in C from its columns: only the bar times cost Python calls."""
        n = page.size
        return zip(map(iso_utc, page.timestamps), repeat(page.exchange, n), repeat(page.symbol, n),
                   repeat(page.timeframe, n), page.opens, page.highs, page.lows, page.closes,
                   page.volumes, repeat(iso_utc(page.ingested_at), n))

    def _shrink_wal(self, conn: sqlite3.Connection) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            if wal.stat().st_size <= WAL_TRUNCATE_BYTES:
                return
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        except (OSError, sqlite3.DatabaseError):
            pass  # a reader still holds it, or another worker is writing: the next commit retries

    def _store_error(self, exc: sqlite3.DatabaseError) -> Exception:
        """Locked, disk full, I/O: try again later. Anything else (not a database): never."""
        if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(exc):
            return DiskFull(f"sqlite {self.path}: {exc} (no space left on device)")
        unavailable = isinstance(exc, sqlite3.OperationalError)
        return (SinkUnavailable if unavailable else SinkRejected)(f"sqlite {self.path}: {exc}")

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def last_timestamps(self, series: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        result = {}
        for dataset, wanted in datasets.by_dataset(series).items():
            result.update(self._last_timestamps(dataset, wanted))
        return result

    def _last_timestamps(self, dataset: str, wanted: set[SeriesKey]) -> dict[SeriesKey, int]:
        """The newest stored time of each series of one dataset, in one query."""
        exchanges = sorted({s.exchange for s in wanted})
        if dataset == OHLCV:
            query = datasets.last_timestamps_sql(TABLE_NAME, True, len(exchanges))
        else:
            spec = POINT_TABLES[dataset]
            query = datasets.last_timestamps_sql(spec.name, spec.has_timeframe, len(exchanges))
        with self._lock:
            try:
                found = self._connection().execute(query, exchanges).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._store_error(exc) from exc
        keys = ((series_key(ex, sym, tf, dataset), last) for ex, sym, tf, last in found)
        return {key: parse_iso_utc(last) for key, last in keys if key in wanted}

    def stored_timestamps(self, series: SeriesKey, start_ms: int, end_ms: int) -> list[int]:
        if series.dataset != OHLCV:
            query, args = (datasets.stored_sql(POINT_TABLES[series.dataset]),
                           datasets.stored_args(series, iso_utc(start_ms), iso_utc(end_ms)))
        else:
            query, args = self._stored_candles_query(series, start_ms, end_ms)
        with self._lock:
            try:
                found = self._connection().execute(query, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._store_error(exc) from exc
        return [parse_iso_utc(ts) for (ts,) in found]

    @staticmethod
    def _stored_candles_query(series: SeriesKey, start_ms: int, end_ms: int) -> tuple[str, tuple]:
        query = (f"SELECT timestamp FROM {TABLE_NAME} WHERE exchange = ? AND symbol = ? "
                 "AND timeframe = ? AND timestamp >= ? AND timestamp < ? ORDER BY timestamp")
        return query, (*series[:3], iso_utc(start_ms), iso_utc(end_ms))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
