"""Builds the configured sink; BigQuery's client is only imported when it is used."""

from __future__ import annotations

from supervisor.config import StorageConfig
from worker.sinks.base import Sink


def make_sink(storage: StorageConfig, *, bulk: bool = False) -> Sink:
    """``bulk`` selects load jobs over streaming inserts (HISTORY) where the store has both."""
    if storage.backend == "bigquery":
        from worker.sinks.bigquery import BigQuerySink

        bq = storage.bigquery
        return BigQuerySink(project=bq.project, dataset=bq.dataset, table=bq.table,
                            location=bq.location, request_timeout_s=bq.request_timeout_seconds,
                            retry_deadline_s=bq.retry_deadline_seconds, bulk=bulk)
    from worker.sinks.sqlite import SqliteSink

    return SqliteSink(storage.sqlite.path)
