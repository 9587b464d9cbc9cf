"""Reading a dataset's latest rows in [start, end) from the store, in partition order.

Rows come ordered by the dataset's partition levels, then timestamp, so the writer holds one
partition (one series-day) at a time whatever the range. Each reader also tells the day of a
row's timestamp, in the form its backend returns it (ISO text for SQLite, datetime for BigQuery).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from core.config import StorageConfig
from core.timefmt import iso_utc
from worker.errors import SinkUnavailable
from worker.export_datasets import ExportDataset

FETCH_ROWS = 20_000


@dataclass
class LatestRows:
    total: int                                  # rows the query returns (for the progress bar)
    rows: Iterator[tuple[Any, ...]]             # in the dataset's column order
    day_of: Callable[[Any], str]                # YYYY-MM-DD of a timestamp value
    close: Callable[[], None] = lambda: None


class SqliteLatestReader:
    def __init__(self, path: str) -> None:
        if not Path(path).is_file():
            raise SinkUnavailable(f"sqlite {path}: no such file")
        # Read-only: an export never creates or changes the store.
        self._conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=30)

    def read(self, dataset: ExportDataset, start_ms: int, end_ms: int,
             exchanges: tuple[str, ...]) -> LatestRows | None:
        where = "timestamp >= ? AND timestamp < ?"
        params: list[Any] = [iso_utc(start_ms), iso_utc(end_ms)]
        if exchanges:
            where += f" AND exchange IN ({', '.join('?' * len(exchanges))})"
            params += exchanges
        view = dataset.latest_view
        try:
            (total,) = self._conn.execute(f"SELECT COUNT(*) FROM {view} WHERE {where}", params).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise SinkUnavailable(f"sqlite: {exc}") from exc
        order = ", ".join((*dataset.partition_by, "timestamp"))
        cursor = self._conn.execute(f"SELECT {', '.join(dataset.schema.names)} FROM {view} WHERE {where} "
                                    f"ORDER BY {order}", params)

        def rows() -> Iterator[tuple[Any, ...]]:
            while batch := cursor.fetchmany(FETCH_ROWS):
                yield from batch
        return LatestRows(total, rows(), lambda ts: ts[:10], cursor.close)

    def close(self) -> None:
        self._conn.close()


class BigQueryLatestReader:
    """The dataset's ``_latest`` view through the google-cloud-bigquery client, one query."""

    def __init__(self, storage: StorageConfig) -> None:
        from worker.sinks.bigquery import make_client

        bq = storage.bigquery
        self._client = make_client(bq.project, bq.location)
        self._dataset = f"{bq.project or self._client.project}.{bq.dataset}"
        self._timeout = bq.request_timeout_seconds

    def read(self, dataset: ExportDataset, start_ms: int, end_ms: int,
             exchanges: tuple[str, ...]) -> LatestRows | None:
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        params: list[Any] = [bigquery.ScalarQueryParameter(name, "TIMESTAMP", _utc(ms))
                             for name, ms in (("start", start_ms), ("end", end_ms))]
        where = "timestamp >= @start AND timestamp < @end"
        if exchanges:
            where += " AND exchange IN UNNEST(@exchanges)"
            params.append(bigquery.ArrayQueryParameter("exchanges", "STRING", list(exchanges)))
        sql = (f"SELECT {', '.join(dataset.schema.names)} FROM `{self._dataset}.{dataset.latest_view}` "
               f"WHERE {where} ORDER BY {', '.join((*dataset.partition_by, 'timestamp'))}")
        try:
            result = self._client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params),
                                        timeout=self._timeout).result(page_size=FETCH_ROWS)
        except gexc.NotFound:
            return None
        except Exception as exc:
            raise SinkUnavailable(f"BigQuery export query: {type(exc).__name__}: {exc}"[:600]) from exc
        return LatestRows(result.total_rows or 0, (tuple(row.values()) for row in result),
                          lambda ts: ts.astimezone(UTC).strftime("%Y-%m-%d"))

    def close(self) -> None:
        self._client.close()


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def open_reader(storage: StorageConfig) -> SqliteLatestReader | BigQueryLatestReader:
    if storage.backend == "bigquery":
        return BigQueryLatestReader(storage)
    return SqliteLatestReader(storage.sqlite.path)
