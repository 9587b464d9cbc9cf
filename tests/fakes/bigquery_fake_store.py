"""In-memory BigQuery state for the fake: datasets, tables, rows and jobs.

Rows live in one SQLite database (one SQLite table per BigQuery table, named
by its full id "project.dataset.table") so that queries see exactly what
insertAll and load jobs wrote.  All methods take the store lock; the HTTP
layer calls them from many threads.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import itertools
import json
import sqlite3
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

from tests.fakes import bigquery_fake_values as values
from tests.fakes.bigquery_fake_engine import QueryEngine, QueryResult
from tests.fakes.bigquery_fake_sql import Catalog, quote_ident
from tests.fakes.bigquery_fake_values import ApiError, invalid, not_found

Key = tuple[str, str, str]
_MAX_INSERT_ROWS = 50_000  # tabledata.insertAll per-request row limit.
_ANON_DATASET = "_fake_anonymous"
_READ_ONLY_TABLE_KEYS = frozenset({"kind", "id", "selfLink", "tableReference", "creationTime",
                                   "lastModifiedTime", "etag", "numRows", "numBytes", "type",
                                   "location"})


def _now_ms() -> str:
    return str(int(time.time() * 1000))


@dataclasses.dataclass
class ReceivedRow:
    """One row as tabledata.insertAll received it (before validation)."""

    insert_id: str | None
    row: dict[str, Any]
    stored: bool


@dataclasses.dataclass
class Job:
    resource: dict[str, Any]
    result: QueryResult | None = None
    error: ApiError | None = None


class Store(Catalog):
    """Everything BigQuery would persist, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.engine = QueryEngine(self.conn, self)
        self.datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.tables: dict[Key, dict[str, Any]] = {}
        self.received: dict[Key, list[ReceivedRow]] = {}
        self.jobs: dict[tuple[str, str], Job] = {}
        self._etags = itertools.count(1)

    # -- Catalog protocol used by the SQL translator -------------------------

    def lookup_table(self, project: str, dataset: str, table: str) -> dict[str, Any] | None:
        return self.tables.get((project, dataset, table))

    def dataset_exists(self, project: str, dataset: str) -> bool:
        return (project, dataset) in self.datasets

    # -- datasets -------------------------------------------------------------

    def _etag(self) -> str:
        return f"fake-etag-{next(self._etags)}"

    def get_dataset(self, project: str, dataset: str) -> dict[str, Any]:
        with self.lock:
            resource = self.datasets.get((project, dataset))
            if resource is None:
                raise not_found(f"Dataset {project}:{dataset}")
            return copy.deepcopy(resource)

    def insert_dataset(self, project: str, body: Mapping[str, Any]) -> dict[str, Any]:
        ref = body.get("datasetReference") or {}
        dataset = ref.get("datasetId")
        project = ref.get("projectId") or project
        if not dataset:
            raise invalid("Required parameter is missing: datasetReference.datasetId")
        with self.lock:
            if (project, dataset) in self.datasets:
                raise ApiError(409, "duplicate", f"Already Exists: Dataset {project}:{dataset}")
            resource = dict(copy.deepcopy(body))
            now = _now_ms()
            resource.update({
                "kind": "bigquery#dataset", "id": f"{project}:{dataset}",
                "datasetReference": {"projectId": project, "datasetId": dataset},
                "location": body.get("location") or "US", "creationTime": now,
                "lastModifiedTime": now, "etag": self._etag(),
                "selfLink": f"/bigquery/v2/projects/{project}/datasets/{dataset}",
            })
            self.datasets[(project, dataset)] = resource
            return copy.deepcopy(resource)

    def patch_dataset(self, project: str, dataset: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            resource = self.datasets.get((project, dataset))
            if resource is None:
                raise not_found(f"Dataset {project}:{dataset}")
            for key, value in body.items():
                if key not in ("kind", "id", "datasetReference", "creationTime", "etag"):
                    resource[key] = value
            resource.update(lastModifiedTime=_now_ms(), etag=self._etag())
            return copy.deepcopy(resource)

    def delete_dataset(self, project: str, dataset: str, delete_contents: bool) -> None:
        with self.lock:
            if (project, dataset) not in self.datasets:
                raise not_found(f"Dataset {project}:{dataset}")
            keys = [k for k in self.tables if k[:2] == (project, dataset)]
            if keys and not delete_contents:
                raise ApiError(400, "resourceInUse",
                               f"Dataset {project}:{dataset} is still in use")
            for key in keys:
                self.delete_table(*key)
            del self.datasets[(project, dataset)]

    def list_datasets(self, project: str) -> dict[str, Any]:
        with self.lock:
            items = [{"kind": "bigquery#dataset", "id": r["id"],
                      "datasetReference": r["datasetReference"], "location": r["location"]}
                     for (p, _), r in sorted(self.datasets.items()) if p == project]
        return {"kind": "bigquery#datasetList", "datasets": items}

    # -- tables -----------------------------------------------------------------

    def _table(self, project: str, dataset: str, table: str) -> dict[str, Any]:
        resource = self.tables.get((project, dataset, table))
        if resource is None:
            if (project, dataset) not in self.datasets:
                raise not_found(f"Dataset {project}:{dataset}")
            raise not_found(f"Table {project}:{dataset}.{table}")
        return resource

    def get_table(self, project: str, dataset: str, table: str) -> dict[str, Any]:
        with self.lock:
            resource = copy.deepcopy(self._table(project, dataset, table))
            if resource["type"] == "TABLE":
                count = self.conn.execute(
                    f"SELECT COUNT(*) FROM {quote_ident(self._sqlite_name(resource))}").fetchone()[0]
                resource["numRows"] = str(count)
            return resource

    def insert_table(self, project: str, dataset: str, body: Mapping[str, Any]) -> dict[str, Any]:
        ref = body.get("tableReference") or {}
        table = ref.get("tableId")
        if not table:
            raise invalid("Required parameter is missing: tableReference.tableId")
        with self.lock:
            if (project, dataset) not in self.datasets:
                raise not_found(f"Dataset {project}:{dataset}")
            if (project, dataset, table) in self.tables:
                raise ApiError(409, "duplicate",
                               f"Already Exists: Table {project}:{dataset}.{table}")
            resource = self._new_table_resource(project, dataset, table, body)
            if resource["type"] == "VIEW":
                self.tables[(project, dataset, table)] = resource
                try:
                    self._refresh_view_schema(resource)
                except ApiError:
                    del self.tables[(project, dataset, table)]
                    raise
            else:
                self._create_sqlite_table(resource)
                self.tables[(project, dataset, table)] = resource
            return self.get_table(project, dataset, table)

    def _new_table_resource(self, project: str, dataset: str, table: str,
                            body: Mapping[str, Any]) -> dict[str, Any]:
        resource = {k: copy.deepcopy(v) for k, v in body.items() if v is not None}
        now = _now_ms()
        is_view = bool((body.get("view") or {}).get("query"))
        resource.update({
            "kind": "bigquery#table", "id": f"{project}:{dataset}.{table}",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "selfLink": f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}",
            "creationTime": now, "lastModifiedTime": now, "etag": self._etag(),
            "type": "VIEW" if is_view else "TABLE", "location": "US",
        })
        if is_view:
            self._check_view(resource["view"])
        else:
            resource.pop("view", None)
            fields = values.normalize_fields((body.get("schema") or {}).get("fields") or [])
            resource["schema"] = {"fields": fields}
            resource.update(numRows="0", numBytes="0")
            self._check_partitioning(resource)
        return resource

    @staticmethod
    def _check_view(view: Mapping[str, Any]) -> None:
        if view.get("useLegacySql"):
            raise invalid("The fake only supports GoogleSQL (useLegacySql=false) views")

    @staticmethod
    def _check_partitioning(resource: Mapping[str, Any]) -> None:
        """Mirror BigQuery's validation of partitioning and clustering specs."""
        fields = resource["schema"]["fields"]
        partitioning = resource.get("timePartitioning") or {}
        if partitioning.get("field"):
            field = values.find_field(fields, partitioning["field"])
            if field is None:
                raise invalid("The field specified for partitioning cannot be found in the schema")
            if field["type"] not in ("TIMESTAMP", "DATE", "DATETIME"):
                raise invalid(f"Partitioning field {field['name']} must be of type TIMESTAMP, "
                              f"DATE or DATETIME, but is {field['type']}")
        clustering = (resource.get("clustering") or {}).get("fields") or []
        if len(clustering) > 4:
            raise invalid("Too many clustering fields: at most 4 are allowed")
        for name in clustering:
            field = values.find_field(fields, name)
            if field is None:
                raise invalid("The field specified for clustering cannot be found in the "
                              f"schema.  Invalid field: {name}.")
            if field["type"] in ("FLOAT", "RECORD", "JSON") or field["mode"] == "REPEATED":
                raise invalid(f"Field {name} is of type {field['type']} which is not "
                              "supported for clustering")

    @staticmethod
    def _sqlite_name(resource: Mapping[str, Any]) -> str:
        ref = resource["tableReference"]
        return f"{ref['projectId']}.{ref['datasetId']}.{ref['tableId']}"

    def _create_sqlite_table(self, resource: Mapping[str, Any]) -> None:
        columns = [f"{quote_ident(f['name'])} {values.sqlite_affinity(f)}"
                   for f in resource["schema"]["fields"]] or ['"_fake_no_columns" TEXT']
        self.conn.execute(f"CREATE TABLE {quote_ident(self._sqlite_name(resource))} "
                          f"({', '.join(columns)})")

    def _refresh_view_schema(self, resource: dict[str, Any]) -> None:
        ref = resource["tableReference"]
        fields = self.engine.view_schema(resource["view"]["query"], ref["projectId"])
        resource["schema"] = {"fields": fields}

    def update_table(self, project: str, dataset: str, table: str, body: Mapping[str, Any],
                     replace: bool, if_match: str | None) -> dict[str, Any]:
        """tables.patch (replace=False) and tables.update (replace=True)."""
        with self.lock:
            resource = self._table(project, dataset, table)
            if if_match and if_match != resource["etag"]:
                raise ApiError(412, "conditionNotMet", "Precondition check failed.")
            updated = copy.deepcopy(resource)
            if replace:
                updated = {k: v for k, v in updated.items() if k in _READ_ONLY_TABLE_KEYS}
                updated["schema"] = resource.get("schema")
            for key, value in body.items():
                if key in _READ_ONLY_TABLE_KEYS:
                    continue
                if value is None:
                    updated.pop(key, None)
                else:
                    updated[key] = copy.deepcopy(value)
            self._apply_update(resource, updated, body)
            updated.update(lastModifiedTime=_now_ms(), etag=self._etag())
            self.tables[(project, dataset, table)] = updated
            return self.get_table(project, dataset, table)

    def _apply_update(self, old: Mapping[str, Any], new: dict[str, Any],
                      body: Mapping[str, Any]) -> None:
        if old["type"] == "VIEW":
            if "view" in body:
                self._check_view(new["view"])
            self._refresh_view_schema(new)
            return
        old_part, new_part = old.get("timePartitioning") or {}, new.get("timePartitioning") or {}
        if old_part and (old_part.get("field"), old_part.get("type")) != (
                new_part.get("field"), new_part.get("type")):
            raise invalid("Cannot change partitioning/clustering spec for a partitioned/"
                          "clustered table.")
        if "schema" in body:
            fields = values.normalize_fields((body.get("schema") or {}).get("fields") or [])
            self._evolve_schema(old, fields)
            new["schema"] = {"fields": fields}
        self._check_partitioning(new)

    def _evolve_schema(self, resource: Mapping[str, Any], fields: list[dict[str, Any]]) -> None:
        """Apply an additive schema change to the SQLite mirror (or reject it)."""
        old_fields = resource["schema"]["fields"]
        ref = resource["tableReference"]
        values.check_schema_update(f"{ref['projectId']}:{ref['datasetId']}.{ref['tableId']}",
                                   old_fields, fields)
        name = quote_ident(self._sqlite_name(resource))
        for field in fields:
            if values.find_field(old_fields, field["name"]) is None:
                self.conn.execute(f"ALTER TABLE {name} ADD COLUMN "
                                  f"{quote_ident(field['name'])} {values.sqlite_affinity(field)}")

    def delete_table(self, project: str, dataset: str, table: str) -> None:
        with self.lock:
            resource = self._table(project, dataset, table)
            if resource["type"] == "TABLE":
                self.conn.execute(f"DROP TABLE {quote_ident(self._sqlite_name(resource))}")
            del self.tables[(project, dataset, table)]

    def list_tables(self, project: str, dataset: str) -> dict[str, Any]:
        with self.lock:
            if (project, dataset) not in self.datasets:
                raise not_found(f"Dataset {project}:{dataset}")
            items = [{"kind": "bigquery#table", "id": r["id"], "tableReference": r["tableReference"],
                      "type": r["type"], **({"timePartitioning": r["timePartitioning"]}
                                            if "timePartitioning" in r else {})}
                     for k, r in sorted(self.tables.items()) if k[:2] == (project, dataset)]
        return {"kind": "bigquery#tableList", "tables": items, "totalItems": len(items)}

    # -- rows -------------------------------------------------------------------

    def _insert_rows(self, resource: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
        fields = resource["schema"]["fields"]
        if not rows or not fields:
            return
        names = ", ".join(quote_ident(f["name"]) for f in fields)
        marks = ", ".join("?" for _ in fields)
        self.conn.executemany(
            f"INSERT INTO {quote_ident(self._sqlite_name(resource))} ({names}) VALUES ({marks})",
            [[values.to_sqlite(row.get(f["name"]), f) for f in fields] for row in rows])

    def insert_all(self, project: str, dataset: str, table: str, body: Mapping[str, Any],
                   forced_errors: Callable[[int, Mapping[str, Any]], str | None],
                   log_received: bool = True) -> dict[str, Any]:
        """tabledata.insertAll with BigQuery's all-or-nothing per-request semantics."""
        rows = body.get("rows") or []
        if not rows:
            raise invalid("No rows present in the request.")
        if len(rows) > _MAX_INSERT_ROWS:
            raise invalid(f"too many rows present in the request, limit: {_MAX_INSERT_ROWS} "
                          f"row count: {len(rows)}.")
        if body.get("templateSuffix"):
            raise invalid("templateSuffix is not supported by the fake")
        with self.lock:
            resource = self._table(project, dataset, table)
            if resource["type"] != "TABLE":
                raise invalid(f"Cannot add rows to a table of type {resource['type']}.")
            return self._insert_all_locked(resource, rows, body, forced_errors, log_received)

    def _insert_all_locked(self, resource: dict[str, Any], rows: Sequence[Mapping[str, Any]],
                           body: Mapping[str, Any],
                           forced_errors: Callable[[int, Mapping[str, Any]], str | None],
                           log_received: bool) -> dict[str, Any]:
        coerced, errors = self._validate_insert(resource, rows, body, forced_errors)
        skip_invalid = bool(body.get("skipInvalidRows"))
        # Without skipInvalidRows one bad row keeps the whole request out.
        store = [i for i in range(len(rows)) if i not in errors] if (skip_invalid or not errors) else []
        self._insert_rows(resource, [coerced[i] for i in store])
        if log_received:
            log = self.received.setdefault(self._key(resource), [])
            stored = set(store)
            for index, entry in enumerate(rows):
                log.append(ReceivedRow(entry.get("insertId"), copy.deepcopy(entry.get("json")),
                                       index in stored))
        response: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            # Valid rows that were not written because of other rows are "stopped".
            stopped = {"reason": "stopped", "location": "", "debugInfo": "", "message": ""}
            response["insertErrors"] = [
                {"index": i, "errors": errors.get(i) or [dict(stopped)]}
                for i in range(len(rows)) if i in errors or not skip_invalid]
        return response

    @staticmethod
    def _validate_insert(resource: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                         body: Mapping[str, Any],
                         forced_errors: Callable[[int, Mapping[str, Any]], str | None]
                         ) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, str]]]]:
        coerce = values.row_coercer(resource["schema"]["fields"], bool(body.get("ignoreUnknownValues")))
        coerced, errors = [], {}
        for index, entry in enumerate(rows):
            row = entry.get("json") if isinstance(entry, Mapping) else None
            row_values, row_errors = coerce(row if row is not None else {})
            forced = forced_errors(index, row or {})
            if forced:
                row_errors.append({"reason": "invalid", "location": "", "debugInfo": "",
                                   "message": forced})
            coerced.append(row_values)
            if row_errors:
                errors[index] = row_errors
        return coerced, errors

    @staticmethod
    def _key(resource: Mapping[str, Any]) -> Key:
        ref = resource["tableReference"]
        return ref["projectId"], ref["datasetId"], ref["tableId"]

    def list_rows(self, project: str, dataset: str, table: str, start: int,
                  max_results: int | None, selected: Sequence[str] | None,
                  int64_ts: bool) -> dict[str, Any]:
        """tabledata.list, also serving the anonymous tables that hold query results."""
        with self.lock:
            if dataset == _ANON_DATASET:
                job = self.jobs.get((project, table))
                if job is None or job.result is None:
                    raise not_found(f"Table {project}:{dataset}.{table}")
                fields, rows = job.result.fields, job.result.rows
            else:
                resource = self._table(project, dataset, table)
                if resource["type"] != "TABLE":
                    raise invalid(f"Cannot list a table of type {resource['type']}.")
                fields = resource["schema"]["fields"]
                names = ", ".join(quote_ident(f["name"]) for f in fields) or "NULL"
                rows = self.conn.execute(f"SELECT {names} FROM "
                                         f"{quote_ident(self._sqlite_name(resource))} "
                                         "ORDER BY rowid").fetchall()
        if selected:
            wanted = [i for i, f in enumerate(fields) if f["name"].lower() in
                      {s.lower() for s in selected}]
            fields = [fields[i] for i in wanted]
            rows = [tuple(row[i] for i in wanted) for row in rows]
        return page_of_rows(fields, rows, start, max_results, int64_ts,
                            {"kind": "bigquery#tableDataList", "etag": self._etag()})

    def decoded_rows(self, project: str, dataset: str, table: str) -> list[dict[str, Any]]:
        with self.lock:
            resource = self._table(project, dataset, table)
            fields = resource["schema"]["fields"]
            names = ", ".join(quote_ident(f["name"]) for f in fields) or "NULL"
            rows = self.conn.execute(f"SELECT {names} FROM "
                                     f"{quote_ident(self._sqlite_name(resource))} "
                                     "ORDER BY rowid").fetchall()
        return [{f["name"]: values.decode_value(v, f) for f, v in zip(fields, row)} for row in rows]

    # -- jobs -------------------------------------------------------------------

    def new_job(self, project: str, body: Mapping[str, Any], job_type: str) -> Job:
        ref = dict(body.get("jobReference") or {})
        ref.setdefault("projectId", project)
        ref["jobId"] = ref.get("jobId") or f"job_{uuid.uuid4().hex}"
        ref["location"] = ref.get("location") or "US"
        resource = copy.deepcopy(dict(body))
        now = _now_ms()
        resource.update({
            "kind": "bigquery#job", "etag": self._etag(), "jobReference": ref,
            "id": f"{ref['projectId']}:{ref['location']}.{ref['jobId']}",
            "selfLink": f"/bigquery/v2/projects/{ref['projectId']}/jobs/{ref['jobId']}",
            "user_email": "fake@example.com", "status": {"state": "DONE"},
            "statistics": {"creationTime": now, "startTime": now, "endTime": now},
        })
        resource.setdefault("configuration", {})["jobType"] = job_type
        return Job(resource)

    def register_job(self, job: Job) -> None:
        ref = job.resource["jobReference"]
        with self.lock:
            if (ref["projectId"], ref["jobId"]) in self.jobs:
                raise ApiError(409, "duplicate",
                               f"Already Exists: Job {ref['projectId']}:{ref['location']}.{ref['jobId']}")
            self.jobs[(ref["projectId"], ref["jobId"])] = job

    def get_job(self, project: str, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get((project, job_id))
        if job is None:
            raise not_found(f"Job {project}:US.{job_id}")
        return job

    @staticmethod
    def fail_job(job: Job, error: ApiError) -> None:
        job.error = error
        job.resource["status"] = {"state": "DONE", "errorResult": error.error_proto(),
                                  "errors": [error.error_proto()]}

    def run_query_job(self, job: Job, sql: str, parameters: Sequence[Mapping[str, Any]],
                      default_dataset: Mapping[str, Any] | None = None) -> None:
        """Execute a query into the job, recording success or BigQuery-style failure."""
        ref = job.resource["jobReference"]
        try:
            with self.lock:
                job.result = self.engine.run(sql, ref["projectId"], parameters, default_dataset)
        except ApiError as exc:
            self.fail_job(job, exc)
            return
        result = job.result
        stats = {"totalBytesProcessed": "0", "totalBytesBilled": "0", "cacheHit": False,
                 "statementType": result.statement_type, "totalSlotMs": "0",
                 "schema": {"fields": result.fields}}
        if result.dml_affected_rows is not None:
            stats["numDmlAffectedRows"] = str(result.dml_affected_rows)
        job.resource["statistics"].update(totalBytesProcessed="0", query=stats)
        query_cfg = job.resource["configuration"].setdefault("query", {})
        query_cfg.setdefault("destinationTable", {"projectId": ref["projectId"],
                                                  "datasetId": _ANON_DATASET,
                                                  "tableId": ref["jobId"]})

    def run_load_job(self, job: Job, data: bytes) -> None:
        try:
            with self.lock:
                output_rows, bad = self._load(job.resource["configuration"]["load"], data)
        except ApiError as exc:
            self.fail_job(job, exc)
            return
        job.resource["statistics"]["load"] = {
            "inputFiles": "1", "inputFileBytes": str(len(data)), "outputRows": str(output_rows),
            "outputBytes": str(len(data)), "badRecords": str(bad)}

    def _load(self, config: Mapping[str, Any], data: bytes) -> tuple[int, int]:
        dest = config.get("destinationTable") or {}
        key = (dest.get("projectId"), dest.get("datasetId"), dest.get("tableId"))
        resource = self.tables.get(key)  # type: ignore[arg-type]
        job_fields = values.normalize_fields((config.get("schema") or {}).get("fields") or [])
        raw_rows = _parse_source(config, data)
        if resource is None:
            resource = self._create_load_destination(config, key, job_fields, raw_rows)
        elif resource["type"] != "TABLE":
            raise invalid(f"Cannot load into a table of type {resource['type']}.")
        else:
            self._load_schema_update(config, resource, job_fields)
        coerce = values.row_coercer(resource["schema"]["fields"], bool(config.get("ignoreUnknownValues")))
        good, errors = [], []
        for index, raw in enumerate(raw_rows):
            row_values, row_errors = coerce(raw)
            if row_errors:
                errors.append((index, row_errors))
            else:
                good.append(row_values)
        if len(errors) > int(config.get("maxBadRecords") or 0):
            raise _load_error(errors, config.get("sourceFormat") or "CSV")
        disposition = config.get("writeDisposition") or "WRITE_APPEND"
        name = quote_ident(self._sqlite_name(resource))
        if disposition == "WRITE_EMPTY" and self.conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]:
            raise ApiError(409, "duplicate", f"Already Exists: Table {key[0]}:{key[1]}.{key[2]}")
        if disposition == "WRITE_TRUNCATE":
            self.conn.execute(f"DELETE FROM {name}")
        self._insert_rows(resource, good)
        return len(good), len(errors)

    def _create_load_destination(self, config: Mapping[str, Any], key: tuple, fields: list,
                                 raw_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        project, dataset, table = key
        if (config.get("createDisposition") or "CREATE_IF_NEEDED") == "CREATE_NEVER":
            raise not_found(f"Table {project}:{dataset}.{table}")
        if not fields and config.get("autodetect"):
            fields = _autodetect(raw_rows)
        if not fields:
            raise invalid("No schema specified on job or table.")
        body = {"tableReference": {"tableId": table}, "schema": {"fields": fields}}
        for option in ("timePartitioning", "clustering"):
            if config.get(option):
                body[option] = config[option]
        self.insert_table(project, dataset, body)
        return self.tables[key]

    def _load_schema_update(self, config: Mapping[str, Any], resource: dict[str, Any],
                            job_fields: list[dict[str, Any]]) -> None:
        """A job schema must match the table unless schemaUpdateOptions allow the change."""
        if not job_fields:
            return
        old = resource["schema"]["fields"]
        if (config.get("writeDisposition") or "WRITE_APPEND") == "WRITE_TRUNCATE":
            added = [f for f in job_fields if values.find_field(old, f["name"]) is None]
            if added or len(job_fields) != len(old):
                self._recreate(resource, job_fields)
            return
        options = set(config.get("schemaUpdateOptions") or [])
        added = [f for f in job_fields if values.find_field(old, f["name"]) is None]
        if added and "ALLOW_FIELD_ADDITION" not in options:
            ref = resource["tableReference"]
            raise invalid(f"Provided Schema does not match Table {ref['projectId']}:"
                          f"{ref['datasetId']}.{ref['tableId']}. Cannot add fields "
                          f"(field: {added[0]['name']})")
        merged = [values.find_field(job_fields, f["name"]) or f for f in old] + added
        self._evolve_schema(resource, merged)
        resource["schema"] = {"fields": merged}

    def _recreate(self, resource: dict[str, Any], fields: list[dict[str, Any]]) -> None:
        self.conn.execute(f"DROP TABLE {quote_ident(self._sqlite_name(resource))}")
        resource["schema"] = {"fields": fields}
        self._create_sqlite_table(resource)


def page_of_rows(fields: Sequence[Mapping[str, Any]], rows: Sequence[Sequence[Any]], start: int,
                 max_results: int | None, int64_ts: bool,
                 base: dict[str, Any]) -> dict[str, Any]:
    """One page of REST rows; the page token is the next start index."""
    end = len(rows) if max_results is None else min(len(rows), start + max_results)
    response = dict(base, totalRows=str(len(rows)))
    if max_results != 0:
        response["rows"] = values.encode_rows(rows[start:end], fields, int64_ts)
    if end < len(rows) and max_results:
        response["pageToken"] = str(end)
    return response


def _parse_source(config: Mapping[str, Any], data: bytes) -> list[dict[str, Any]]:
    source_format = config.get("sourceFormat") or "CSV"  # BigQuery's default format.
    text = data.decode("utf-8")
    if source_format == "NEWLINE_DELIMITED_JSON":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise invalid("Error while reading data, error message: JSON table encountered "
                              f"too many errors, giving up. Rows: {number}; errors: 1. "
                              f"JSON parsing error in row starting at position 0: {exc}") from None
        return rows
    if source_format == "CSV":
        fields = (config.get("schema") or {}).get("fields") or []
        reader = csv.reader(io.StringIO(text), delimiter=config.get("fieldDelimiter") or ",")
        records = list(reader)[int(config.get("skipLeadingRows") or 0):]
        return [{f["name"]: (v if v != "" else None) for f, v in zip(fields, record)}
                for record in records if record]
    raise invalid(f"Source format {source_format} is not supported by the fake")


def _autodetect(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    fields: dict[str, str] = {}
    for row in rows[:500]:
        for name, value in row.items():
            if value is None or name in fields:
                continue
            if isinstance(value, bool):
                fields[name] = "BOOLEAN"
            elif isinstance(value, int):
                fields[name] = "INTEGER"
            elif isinstance(value, float):
                fields[name] = "FLOAT"
            else:
                try:
                    values.parse_timestamp(str(value))
                    fields[name] = "TIMESTAMP" if ":" in str(value) else "DATE"
                except ValueError:
                    fields[name] = "STRING"
    return [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in fields.items()]


def _load_error(errors: list[tuple[int, list[dict[str, str]]]], source_format: str) -> ApiError:
    kind = "JSON" if source_format == "NEWLINE_DELIMITED_JSON" else source_format
    first_index, first = errors[0]
    detail = "; ".join(e["message"] for e in first)
    error = invalid(f"Error while reading data, error message: {kind} table encountered too many "
                    f"errors, giving up. Rows: {first_index + 1}; errors: {len(errors)}. Please look "
                    f"into the errors[] collection for more details. First error: {detail}")
    return error
