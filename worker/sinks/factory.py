"""Builds the configured sink; BigQuery's client is only imported when it is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.config import StorageConfig
from worker.sinks.base import Sink

if TYPE_CHECKING:
    from worker.sinks.offloaded import WriterLogging


def make_sink(storage: StorageConfig, *, bulk: bool = False,
              logging_to: WriterLogging | None = None) -> Sink:
    """The store for one worker. ``bulk`` (HISTORY, audit) writes from a process of its own
    (see ``worker.sinks.offloaded``) and prefers load jobs over streaming inserts."""
    if bulk:
        from worker.sinks.offloaded import OffloadedSink

        return OffloadedSink(storage, bulk=True, logging_to=logging_to)
    return make_local_sink(storage)


def make_local_sink(storage: StorageConfig, *, bulk: bool = False) -> Sink:
    """The store's client in this process."""
    if storage.backend == "bigquery":
        from worker.sinks.bigquery import BigQuerySink

        bq = storage.bigquery
        return BigQuerySink(project=bq.project, dataset=bq.dataset, table=bq.table,
                            location=bq.location, request_timeout_s=bq.request_timeout_seconds,
                            retry_deadline_s=bq.retry_deadline_seconds, bulk=bulk,
                            tables=dict(bq.tables))
    from worker.sinks.sqlite import SqliteSink

    return SqliteSink(storage.sqlite.path)
