"""Google BigQuery store.

LIVE rows go through streaming inserts (``insertAll``), each with an insertId derived from the
row's key and values: a retried request is deduplicated by BigQuery on a best-effort basis,
and a bar whose values changed gets a new id. HISTORY rows go through load jobs, which are
free and take large batches (streaming is billed). The table keeps every version of a bar;
the ``market_data_ohlcv_latest`` view picks the newest one.

Its size is the client's error handling (which answers are retried, which rows are refused
and why) next to the two write paths it applies to; the other datasets' schemas live in
:mod:`worker.sinks.bigquery_datasets`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import bigquery
from requests import exceptions as rexc

from core.series import OHLCV, OhlcvRow, Row, SeriesKey, rows_by_dataset, series_key
from core.timefmt import epoch_ms, iso_utc
from worker.errors import SinkRejected, SinkUnavailable
from worker.sinks.base import COLUMNS, LATEST_VIEW_NAME, TABLE_NAME, WriteResult
from worker.sinks.bigquery_datasets import POINT_BQ_TABLES, point_insert_id
from worker.sinks.bigquery_datasets import latest_view_sql as point_view_sql

log = logging.getLogger(__name__)

SCHEMA = [
    bigquery.SchemaField("timestamp", "TIMESTAMP", mode="REQUIRED", description="Candle open time (UTC)"),
    bigquery.SchemaField("exchange", "STRING", mode="REQUIRED", description="ccxt exchange id"),
    bigquery.SchemaField("symbol", "STRING", mode="REQUIRED", description="Unified pair, e.g. BTC/USDT"),
    bigquery.SchemaField("timeframe", "STRING", mode="REQUIRED", description="Candle period, e.g. 1h"),
    bigquery.SchemaField("open", "FLOAT", mode="REQUIRED"),
    bigquery.SchemaField("high", "FLOAT", mode="REQUIRED"),
    bigquery.SchemaField("low", "FLOAT", mode="REQUIRED"),
    bigquery.SchemaField("close", "FLOAT", mode="REQUIRED"),
    bigquery.SchemaField("volume", "FLOAT", mode="REQUIRED"),
    bigquery.SchemaField("ingested_at", "TIMESTAMP", mode="REQUIRED", description="System insertion time"),
]

# insertAll allows 50,000 rows and 10 MB per request; Google recommends 500 rows. A row here
# is about 250 bytes of JSON, so 500 rows stay near 125 KB, far under the size limit.
STREAM_BATCH_ROWS = 500
# A load job per 200,000 rows keeps a long backfill well inside 1,500 load jobs per table a day.
LOAD_BATCH_ROWS = 200_000
_TRANSIENT_REASONS = {"backendError", "internalError", "rateLimitExceeded", "quotaExceeded",
                      "timeout", "stopped"}


def insert_id(row: OhlcvRow) -> str:
    """Same id when the same row is retried; a new id when the bar's values changed."""
    key = (f"{row.exchange}|{row.symbol}|{row.timeframe}|{row.timestamp}|"
           f"{row.open!r}|{row.high!r}|{row.low!r}|{row.close!r}|{row.volume!r}")
    return hashlib.sha1(key.encode()).hexdigest()


def row_json(row: OhlcvRow) -> dict[str, Any]:
    return {"timestamp": iso_utc(row.timestamp), "exchange": row.exchange, "symbol": row.symbol,
            "timeframe": row.timeframe, "open": row.open, "high": row.high, "low": row.low,
            "close": row.close, "volume": row.volume, "ingested_at": iso_utc(row.ingested_at)}


def latest_view_sql(table_path: str) -> str:
    columns = ", ".join(COLUMNS)
    return (f"SELECT {columns} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY exchange, symbol, "
            f"timeframe, timestamp ORDER BY ingested_at DESC) AS rn FROM `{table_path}`) WHERE rn = 1")


def make_client(project: str | None, location: str) -> bigquery.Client:
    """A client; with BIGQUERY_EMULATOR_HOST set, anonymous so emulators and fakes work."""
    if os.environ.get("BIGQUERY_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(project=project or "local-project", location=location,
                               credentials=AnonymousCredentials())
    return bigquery.Client(project=project, location=location)


class _Target(NamedTuple):
    table_path: str
    schema: list
    to_json: Callable[[Any], dict[str, Any]]
    to_id: Callable[[Any], str]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (gexc.ServerError, gexc.TooManyRequests, gexc.RetryError,
                        rexc.ConnectionError, rexc.Timeout, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, gexc.Forbidden):  # quota errors come back as 403
        return any(e.get("reason") in _TRANSIENT_REASONS for e in (exc.errors or []))
    return False


class BigQuerySink:
    def __init__(
        self,
        *,
        project: str | None,
        dataset: str,
        table: str = TABLE_NAME,
        location: str = "US",
        request_timeout_s: float = 30.0,
        retry_deadline_s: float = 60.0,
        bulk: bool = False,
        tables: dict[str, str] | None = None,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._client_factory = client_factory or (lambda: make_client(project, location))
        self._client: Any = None
        self._project = project
        self._dataset = dataset
        self._table = table
        self._location = location
        self._timeout = request_timeout_s
        self._retry = Retry(deadline=retry_deadline_s)
        self._bulk = bulk
        # Table names of the other datasets (storage.bigquery.tables overrides the defaults).
        self._point_tables = {dataset: (tables or {}).get(dataset, t.spec.name)
                              for dataset, t in POINT_BQ_TABLES.items()}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    @property
    def table_path(self) -> str:
        return f"{self._project or self.client.project}.{self._dataset}.{self._table}"

    @property
    def view_path(self) -> str:
        return f"{self._project or self.client.project}.{self._dataset}.{LATEST_VIEW_NAME}"

    def _target(self, dataset: str) -> _Target:
        """Where rows of ``dataset`` go, and how they are written there."""
        if dataset == OHLCV:
            return _Target(self.table_path, SCHEMA, row_json, insert_id)
        table = POINT_BQ_TABLES[dataset]
        path = f"{self._project or self.client.project}.{self._dataset}.{self._point_tables[dataset]}"
        return _Target(path, table.schema, table.to_json, point_insert_id)

    # -- schema ----------------------------------------------------------------------------

    def ensure(self) -> None:
        try:
            self._ensure()
        except Exception as exc:
            raise self._translate(exc, "ensure table") from exc

    def _ensure(self) -> None:
        dataset = bigquery.Dataset(f"{self._project or self.client.project}.{self._dataset}")
        dataset.location = self._location
        self.client.create_dataset(dataset, exists_ok=True, timeout=self._timeout)
        self._ensure_table(self.table_path, SCHEMA, self.view_path, latest_view_sql(self.table_path))
        for name, table in POINT_BQ_TABLES.items():
            path = self._target(name).table_path
            self._ensure_table(path, table.schema, f"{path}_latest", point_view_sql(table.spec, path))

    def _ensure_table(self, table_path: str, schema: list, view_path: str, view_sql: str) -> None:
        table = bigquery.Table(table_path, schema=schema)
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field="timestamp")
        table.clustering_fields = ["exchange", "symbol"]
        existing = self.client.create_table(table, exists_ok=True, timeout=self._timeout)
        self._add_missing_columns(existing, schema, table_path)
        view = bigquery.Table(view_path)
        view.view_query = view_sql
        current = self.client.create_table(view, exists_ok=True, timeout=self._timeout)
        if current.view_query != view.view_query:
            current.view_query = view.view_query
            self.client.update_table(current, ["view_query"], timeout=self._timeout)
        log.info("table %s ready", table_path, extra={"event": "bq_ensure_table"})

    def _add_missing_columns(self, table: Any, schema: list | None = None, table_path: str | None = None) -> None:
        """Add columns the table lacks; never drop or retype one (that would lose data)."""
        schema, table_path = schema or SCHEMA, table_path or self.table_path
        present = {field.name for field in table.schema}
        missing = [field for field in schema if field.name not in present]
        if not missing:
            return
        # Added columns must be NULLABLE: existing rows have no value for them.
        table.schema = list(table.schema) + [
            bigquery.SchemaField(f.name, f.field_type, mode="NULLABLE", description=f.description)
            for f in missing]
        self.client.update_table(table, ["schema"], timeout=self._timeout)
        log.warning("added missing columns %s to %s", [f.name for f in missing], table_path,
                    extra={"event": "bq_schema_updated"})

    # -- writes ----------------------------------------------------------------------------

    def write(self, rows: Sequence[Row]) -> WriteResult:
        if not rows:
            return WriteResult()
        result = WriteResult()
        for dataset, group in rows_by_dataset(rows).items():
            target = self._target(dataset)
            if self._bulk:
                result.written += self._load(group, target).written
                continue
            for start in range(0, len(group), STREAM_BATCH_ROWS):
                chunk = group[start:start + STREAM_BATCH_ROWS]
                written, rejected = self._stream(chunk, target)
                result.written += written
                result.rejected += rejected
        return result

    def _stream(self, rows: Sequence[Row], target: _Target | None = None) -> tuple[int, list[tuple[Row, str]]]:
        rejected: list[tuple[OhlcvRow, str]] = []
        pending = list(rows)
        # BigQuery refuses a whole request when one row is invalid: the others come back as
        # "stopped". They are sent once more without the invalid rows.
        for _ in range(2):
            errors = self._insert(pending, target)
            if not errors:
                return len(rows) - len(rejected), rejected
            stopped = []
            for entry in errors:
                row = pending[entry["index"]]
                reasons = entry.get("errors") or [{}]
                if all(e.get("reason") == "stopped" for e in reasons):
                    stopped.append(row)
                else:
                    rejected.append((row, "; ".join(f"{e.get('reason')}: {e.get('message')}"
                                                     for e in reasons)))
            if not stopped:
                return len(rows) - len(rejected), rejected
            pending = stopped
        raise SinkUnavailable(f"insertAll kept stopping {len(pending)} rows")

    def _insert(self, rows: Sequence[Row], target: _Target | None = None) -> list[dict[str, Any]]:
        target = target or self._target(OHLCV)
        try:
            return self.client.insert_rows_json(
                target.table_path, [target.to_json(r) for r in rows], row_ids=[target.to_id(r) for r in rows],
                timeout=self._timeout, retry=self._retry)
        except Exception as exc:
            raise self._translate(exc, "insertAll") from exc

    def _load(self, rows: Sequence[Row], target: _Target | None = None) -> WriteResult:
        target = target or self._target(OHLCV)
        config = bigquery.LoadJobConfig(
            schema=target.schema, source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
        written = 0
        for start in range(0, len(rows), LOAD_BATCH_ROWS):
            chunk = rows[start:start + LOAD_BATCH_ROWS]
            try:
                job = self.client.load_table_from_json(
                    [target.to_json(r) for r in chunk], target.table_path, job_config=config,
                    timeout=self._timeout)
                job.result(timeout=max(self._timeout, 300), retry=self._retry)
            except Exception as exc:
                raise self._translate(exc, "load job") from exc
            written += len(chunk)
        return WriteResult(written=written)

    # -- resume ----------------------------------------------------------------------------

    def last_timestamps(self, series: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        wanted = set(series)
        result: dict[SeriesKey, int] = {}
        for dataset in sorted({s.dataset for s in wanted}):
            result.update(self._last_timestamps(dataset, {s for s in wanted if s.dataset == dataset}))
        return result

    def _last_timestamps(self, dataset: str, wanted: set[SeriesKey]) -> dict[SeriesKey, int]:
        """The newest stored time of each series of one dataset: a query per exchange."""
        table_path, by_period = self._table_of(dataset)
        period = "timeframe" if by_period else "''"
        result = {}
        for exchange in sorted({s.exchange for s in wanted}):
            sql = (f"SELECT exchange, symbol, {period} AS period, MAX(timestamp) AS last_ts "
                   f"FROM `{table_path}` WHERE exchange = @exchange GROUP BY exchange, symbol, period")
            config = bigquery.QueryJobConfig(query_parameters=[
                bigquery.ScalarQueryParameter("exchange", "STRING", exchange)])
            try:
                rows = self.client.query(sql, job_config=config, timeout=self._timeout).result(
                    timeout=self._timeout * 2)
            except Exception as exc:
                raise self._translate(exc, "watermark query") from exc
            for row in rows:
                key = series_key(row["exchange"], row["symbol"], row["period"], dataset)
                if key in wanted and row["last_ts"] is not None:
                    result[key] = epoch_ms(row["last_ts"])
        return result

    def stored_timestamps(self, series: SeriesKey, start_ms: int, end_ms: int) -> list[int]:
        table_path, by_period = self._table_of(series.dataset)
        period = " AND timeframe = @timeframe" if by_period else ""
        sql = (f"SELECT DISTINCT timestamp FROM `{table_path}` WHERE exchange = @exchange "
               f"AND symbol = @symbol{period} AND timestamp >= @start AND timestamp < @end ORDER BY timestamp")
        params = [bigquery.ScalarQueryParameter(name, "STRING", value)
                  for name, value in zip(("exchange", "symbol", "timeframe"), series[:3])]
        params += [bigquery.ScalarQueryParameter(name, "TIMESTAMP", _utc(ms))
                   for name, ms in (("start", start_ms), ("end", end_ms))]
        try:
            rows = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params),
                                     timeout=self._timeout).result(timeout=self._timeout * 4)
        except Exception as exc:
            raise self._translate(exc, "audit query") from exc
        return [epoch_ms(row["timestamp"]) for row in rows]

    def _table_of(self, dataset: str) -> tuple[str, bool]:
        """A dataset's table, and whether its series are told apart by a timeframe (period)."""
        if dataset == OHLCV:
            return self.table_path, True
        return self._target(dataset).table_path, POINT_BQ_TABLES[dataset].spec.has_timeframe

    def _translate(self, exc: Exception, what: str) -> Exception:
        text = f"BigQuery {what} on {self._table}: {type(exc).__name__}: {exc}"[:600]
        return SinkUnavailable(text) if _transient(exc) else SinkRejected(text)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
