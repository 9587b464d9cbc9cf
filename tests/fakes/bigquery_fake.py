"""A local fake of the BigQuery REST API for tests that use the real client.

Point google-cloud-bigquery at it with the emulator variable, which makes the
client use ``{BIGQUERY_EMULATOR_HOST}/bigquery/v2/...`` for API calls and
``{BIGQUERY_EMULATOR_HOST}/upload/bigquery/v2/projects/{p}/jobs`` for loads::

    fake = BigQueryFake().start()
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", fake.base_url)
    client = bigquery.Client(project="test-project",
                             credentials=google.auth.credentials.AnonymousCredentials())
    ...
    fake.stop()

Also runnable: ``python -m tests.fakes.bigquery_fake --port 9050``.

Public API (all methods are thread-safe and may be called while serving):

* ``BigQueryFake(port=0, project="test-project")``; ``start() -> self``,
  ``stop()``, context manager; ``base_url`` ("http://127.0.0.1:PORT").
* ``add_fault(kind, op="any", count=None, duration=None, table=None, rows=(),
  predicate=None, message=None, reason=None, hold=30.0,
  after_processing=False) -> Fault``; ``clear_faults()``; ``faults``.
  kind: ``"http_500"``, ``"http_503"`` or any ``"http_<code>"`` (Google JSON
  error body, reason ``backendError`` unless ``reason`` is given);
  ``"timeout"`` (read the request, hold it ``hold`` seconds -- or until
  clear_faults()/stop() -- then close without answering); ``"reset"`` (close
  at once); ``"row_errors"`` (insertAll only: rows whose index is in ``rows``
  or for which ``predicate(row_json)`` is true get a per-row ``invalid``
  error, the others ``stopped``).  op: ``"insertAll"``, ``"query"``
  (jobs.query, query jobs.insert, getQueryResults), ``"load"`` (uploads),
  ``"tables"``, ``"datasets"``, ``"tabledata"`` (tabledata.list), ``"jobs"``
  (jobs.get/list/cancel) or ``"any"``.  ``count`` = next N matching requests,
  ``duration`` = seconds from now (both: whichever ends first; neither: until
  cleared).  ``table`` = "dataset.table" restricts table-scoped operations.
  ``after_processing=True`` performs the request first, then fails the
  response -- the "written but the client never heard" case.  A request takes
  the first matching wire fault; a row_errors fault is consumed once per
  matching insertAll request, and all matching ones apply.  ``Fault.hits``
  counts the requests a fault was applied to.
* Inspection: ``rows(dataset, table)`` -> stored rows as dicts, TIMESTAMP as
  timezone-aware UTC ``datetime``, DATE/DATETIME as date/datetime, BOOLEAN as
  bool; ``insert_ids(dataset, table)`` -> insertIds of rows insertAll stored,
  in order, duplicates kept; ``received_rows(dataset, table)`` -> every
  (insertId, json) insertAll processed, stored or rejected;
  ``table_resource(dataset, table)``; ``job_resource(job_id)``;
  ``requests`` -> [(method, path)]; ``request_log`` -> [RequestRecord];
  ``query_log`` -> [QueryRecord].
* Seeding without HTTP: ``create_dataset(dataset)``, ``create_table(dataset,
  table, schema, time_partitioning_field=None, clustering=None, view_query=None)``,
  ``seed_rows(dataset, table, rows)``.

Jobs finish synchronously (state DONE).  Module layout: bigquery_fake_http
(routing, REST methods, uploads, wire faults), bigquery_fake_store (state
and SQLite mirror), bigquery_fake_sql (GoogleSQL -> SQLite, with the list of
supported SQL), bigquery_fake_engine (execution, result typing),
bigquery_fake_values (schemas, timestamps, row validation, wire encoding).

Deliberate differences from BigQuery: insertIds are never deduplicated,
streamed rows are visible at once (no streaming buffer; numRows counts them),
and only GoogleSQL is accepted.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Callable, Mapping, Sequence

from tests.fakes.bigquery_fake_http import Fault, QueryRecord, RequestRecord, RestApi, Wire, make_server
from tests.fakes.bigquery_fake_store import Store
from tests.fakes.signals import stop_on_interrupt_or_term

__all__ = ["BigQueryFake", "Fault", "QueryRecord", "RequestRecord"]


class BigQueryFake:
    """BigQuery REST fake on 127.0.0.1; see the module docstring for the API."""

    def __init__(self, port: int = 0, project: str = "test-project") -> None:
        self.project = project
        self.store = Store()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._release = threading.Condition(self._lock)
        self._release_generation = 0
        self._faults: list[Fault] = []
        self._request_log: list[RequestRecord] = []
        self._query_log: list[QueryRecord] = []
        self._api = RestApi(self.store, self._take_fault, self._log_query)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> BigQueryFake:
        self._server = make_server(Wire(self._api, self._take_fault, self._log_request, self._hold),
                                   self._port)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="bigquery-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release_held()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> BigQueryFake:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("BigQueryFake is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults -----------------------------------------------------------------

    def add_fault(self, kind: str, op: str = "any", count: int | None = None,
                  duration: float | None = None, table: str | None = None,
                  rows: Sequence[int] = (),
                  predicate: Callable[[Mapping[str, Any]], bool] | None = None,
                  message: str | None = None, reason: str | None = None,
                  hold: float = 30.0, after_processing: bool = False) -> Fault:
        if not (kind in ("timeout", "reset", "row_errors") or re.fullmatch(r"http_\d{3}", kind)):
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "row_errors" and op not in ("any", "insertAll"):
            raise ValueError("row_errors faults only apply to insertAll")
        fault = Fault(kind, "insertAll" if kind == "row_errors" else op, count, duration, table,
                      tuple(rows), predicate, message, reason, hold, after_processing)
        if duration is not None:
            fault.expires_at = time.monotonic() + duration
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self._release_held()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _release_held(self) -> None:
        with self._release:
            self._release_generation += 1
            self._release.notify_all()

    def _take_fault(self, op: str, table: str | None, row_faults: bool) -> list[Fault]:
        """Consume matching faults: the first request fault, or all row faults."""
        now = time.monotonic()
        with self._lock:
            taken = []
            for fault in self._faults:
                if (fault.kind == "row_errors") == row_faults and fault.matches(op, table, now):
                    fault.hits += 1
                    taken.append(fault)
                    if not row_faults:
                        break
            return taken

    def _hold(self, seconds: float) -> None:
        with self._release:
            generation = self._release_generation
            self._release.wait_for(lambda: self._release_generation != generation, seconds)

    # -- inspection ---------------------------------------------------------------

    def rows(self, dataset: str, table: str, project: str | None = None) -> list[dict[str, Any]]:
        return self.store.decoded_rows(project or self.project, dataset, table)

    def insert_ids(self, dataset: str, table: str, project: str | None = None) -> list[str | None]:
        with self.store.lock:
            log = self.store.received.get((project or self.project, dataset, table), [])
            return [r.insert_id for r in log if r.stored]

    def received_rows(self, dataset: str, table: str,
                      project: str | None = None) -> list[tuple[str | None, dict[str, Any]]]:
        with self.store.lock:
            log = self.store.received.get((project or self.project, dataset, table), [])
            return [(r.insert_id, r.row) for r in log]

    def table_resource(self, dataset: str, table: str, project: str | None = None) -> dict[str, Any]:
        return self.store.get_table(project or self.project, dataset, table)

    def job_resource(self, job_id: str, project: str | None = None) -> dict[str, Any]:
        return json.loads(json.dumps(self.store.get_job(project or self.project, job_id).resource))

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r.method, r.path) for r in self._request_log]

    @property
    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._request_log)

    @property
    def query_log(self) -> list[QueryRecord]:
        with self._lock:
            return list(self._query_log)

    # -- seeding ------------------------------------------------------------------

    def create_dataset(self, dataset: str, project: str | None = None) -> dict[str, Any]:
        return self.store.insert_dataset(project or self.project,
                                         {"datasetReference": {"datasetId": dataset}})

    def create_table(self, dataset: str, table: str, schema: Sequence[Mapping[str, Any]] = (),
                     time_partitioning_field: str | None = None,
                     clustering: Sequence[str] = (), view_query: str | None = None,
                     project: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"tableReference": {"tableId": table}}
        if view_query:
            body["view"] = {"query": view_query, "useLegacySql": False}
        else:
            body["schema"] = {"fields": [dict(f) for f in schema]}
        if time_partitioning_field:
            body["timePartitioning"] = {"type": "DAY", "field": time_partitioning_field}
        if clustering:
            body["clustering"] = {"fields": list(clustering)}
        return self.store.insert_table(project or self.project, dataset, body)

    def seed_rows(self, dataset: str, table: str, rows: Sequence[Mapping[str, Any]],
                  project: str | None = None) -> None:
        """Insert rows as insertAll would (no insertIds); raises ValueError if invalid."""
        body = {"rows": [{"json": dict(r)} for r in rows]}
        response = self.store.insert_all(project or self.project, dataset, table, body,
                                         lambda index, row: None, log_received=False)
        if response.get("insertErrors"):
            raise ValueError(response["insertErrors"])

    # -- request handling (called from handler threads) ---------------------------

    def _log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._request_log.append(record)

    def _log_query(self, record: QueryRecord) -> None:
        with self._lock:
            self._query_log.append(record)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the BigQuery REST fake on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=9050)
    parser.add_argument("--project", default="test-project")
    args = parser.parse_args(argv)
    stop_on_interrupt_or_term()
    fake = BigQueryFake(port=args.port, project=args.project).start()
    print(f"BigQuery fake listening on {fake.base_url} "
          f"(export BIGQUERY_EMULATOR_HOST={fake.base_url})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
