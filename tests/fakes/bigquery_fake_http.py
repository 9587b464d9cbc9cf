"""HTTP layer of the BigQuery fake: routing, REST endpoints, uploads, wire faults.

Endpoints return (status, JSON body, headers) and raise ApiError for
BigQuery-style failures; the handler turns both into responses and applies
injected faults before (or, with after_processing, after) the endpoint runs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.bigquery_fake_store import Job, Store, page_of_rows
from tests.fakes.bigquery_fake_values import ApiError, invalid

_P = r"/bigquery/v2/projects/(?P<project>[^/]+)"
_D = _P + r"/datasets/(?P<dataset>[^/]+)"
_T = _D + r"/tables/(?P<table>[^/]+)"
_UPLOAD = r"/upload/bigquery/v2/projects/(?P<project>[^/]+)/jobs"
# (methods, path regex, RestApi method name, fault op)
Route = tuple[str, "re.Pattern[str]", str, str]
_ROUTES: list[Route] = [
    (m, re.compile(p + r"/?$"), h, op) for m, p, h, op in [
        ("GET", _P + r"/datasets", "list_datasets", "datasets"),
        ("POST", _P + r"/datasets", "insert_dataset", "datasets"),
        ("GET PATCH PUT DELETE", _D, "dataset", "datasets"),
        ("GET", _D + r"/tables", "list_tables", "tables"),
        ("POST", _D + r"/tables", "insert_table", "tables"),
        ("GET PATCH PUT DELETE", _T, "table", "tables"),
        ("POST", _T + r"/insertAll", "insert_all", "insertAll"),
        ("GET", _T + r"/data", "list_rows", "tabledata"),
        ("POST", _P + r"/jobs", "insert_job", "jobs"),
        ("GET", _P + r"/jobs", "list_jobs", "jobs"),
        ("GET", _P + r"/jobs/(?P<job>[^/]+)", "get_job", "jobs"),
        ("POST", _P + r"/jobs/(?P<job>[^/]+)/cancel", "cancel_job", "jobs"),
        ("DELETE", _P + r"/jobs/(?P<job>[^/]+)/delete", "delete_job", "jobs"),
        ("POST", _P + r"/queries", "query", "query"),
        ("GET", _P + r"/queries/(?P<job>[^/]+)", "get_query_results", "query"),
        ("POST", _UPLOAD, "upload_start", "load"),
        ("PUT", _UPLOAD, "upload_chunk", "load"),
    ]
]
Reply = tuple[int, dict[str, Any] | None, dict[str, str]]
# Reasons BigQuery pairs with these statuses; the client's retry predicate
# looks at the reason (backendError/rateLimitExceeded/internalError retry).
_FAULT_REASONS = {400: "invalid", 403: "rateLimitExceeded", 404: "notFound",
                  429: "rateLimitExceeded"}


@dataclasses.dataclass
class Fault:
    """A failure injected into matching requests; documented in bigquery_fake."""

    kind: str
    op: str = "any"
    count: int | None = None
    duration: float | None = None
    table: str | None = None
    rows: Sequence[int] = ()
    predicate: Callable[[Mapping[str, Any]], bool] | None = None
    message: str | None = None
    reason: str | None = None
    hold: float = 30.0
    after_processing: bool = False
    hits: int = 0
    expires_at: float | None = None

    def matches(self, op: str, table: str | None, now: float) -> bool:
        if self.expires_at is not None and now >= self.expires_at:
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        if self.op not in ("any", op):
            return False
        return self.table is None or self.table == table

    def row_error(self, index: int, row: Mapping[str, Any]) -> str | None:
        if index in self.rows or (self.predicate is not None and self.predicate(row)):
            return self.message or "Row rejected by fault injection."
        return None


@dataclasses.dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    op: str
    status: int | None = None  # None: no response was sent (timeout/reset).
    fault: str | None = None


@dataclasses.dataclass
class QueryRecord:
    sql: str
    parameters: dict[str, Any]
    job_id: str
    api: str  # "jobs.query" or "jobs.insert"
    translated: str | None = None
    error: str | None = None


@dataclasses.dataclass
class _UploadSession:
    project: str
    metadata: dict[str, Any]
    data: bytearray = dataclasses.field(default_factory=bytearray)
    response: dict[str, Any] | None = None


def _bool_param(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("true", "1")


def _int_param(query: Mapping[str, list[str]], name: str) -> int | None:
    raw = (query.get(name) or [None])[0]
    return int(raw) if raw not in (None, "") else None


class RestApi:
    """The BigQuery v2 REST methods the client library calls, over a Store."""

    def __init__(self, store: Store, take_faults: Callable[[str, str | None, bool], list[Fault]],
                 log_query: Callable[[QueryRecord], None]) -> None:
        self.store, self.take_faults, self.log_query = store, take_faults, log_query
        self._lock = threading.Lock()
        self._uploads: dict[str, _UploadSession] = {}
        self._request_ids: dict[str, dict[str, Any]] = {}

    def list_datasets(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        return 200, self.store.list_datasets(m["project"]), {}

    def insert_dataset(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        return 200, self.store.insert_dataset(m["project"], body or {}), {}

    def dataset(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping, method: str = "GET") -> Reply:
        project, dataset = m["project"], m["dataset"]
        if method == "DELETE":
            self.store.delete_dataset(project, dataset, _bool_param(q, "deleteContents"))
            return 204, None, {}
        if method in ("PATCH", "PUT"):
            return 200, self.store.patch_dataset(project, dataset, body or {}), {}
        return 200, self.store.get_dataset(project, dataset), {}

    def list_tables(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        return 200, self.store.list_tables(m["project"], m["dataset"]), {}

    def insert_table(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        return 200, self.store.insert_table(m["project"], m["dataset"], body or {}), {}

    def table(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping, method: str = "GET") -> Reply:
        key = (m["project"], m["dataset"], m["table"])
        if method == "DELETE":
            self.store.delete_table(*key)
            return 204, None, {}
        if method in ("PATCH", "PUT"):
            return 200, self.store.update_table(*key, body or {}, replace=method == "PUT",
                                                if_match=h.get("If-Match")), {}
        return 200, self.store.get_table(*key), {}

    def insert_all(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        # A partition decorator (table$20240101) addresses the same table here.
        m = dict(m, table=m["table"].split("$")[0])
        faults = self.take_faults("insertAll", f"{m['dataset']}.{m['table']}", row_faults=True)

        def forced(index: int, row: Mapping[str, Any]) -> str | None:
            return next((msg for f in faults if (msg := f.row_error(index, row))), None)

        response = self.store.insert_all(m["project"], m["dataset"], m["table"], body or {}, forced)
        return 200, response, {}

    def list_rows(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        start = _int_param(q, "pageToken") or _int_param(q, "startIndex") or 0
        selected = (q.get("selectedFields") or [""])[0]
        response = self.store.list_rows(
            m["project"], m["dataset"], m["table"].split("$")[0], start, _int_param(q, "maxResults"),
            [s for s in selected.split(",") if s] or None,
            _bool_param(q, "formatOptions.useInt64Timestamp"))
        return 200, response, {}

    def insert_job(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        body = body or {}
        config = body.get("configuration") or {}
        if "query" in config:
            return self._insert_query_job(m["project"], body)
        if "load" in config:
            job = self.store.new_job(m["project"], body, "LOAD")
            self.store.register_job(job)
            self.store.fail_job(job, invalid("Load jobs from Cloud Storage URIs are not "
                                             "supported by the fake; upload the data instead"))
            return 200, job.resource, {}
        raise invalid("Only query and load jobs are supported by the fake")

    def _insert_query_job(self, project: str, body: Mapping[str, Any]) -> Reply:
        job = self.store.new_job(project, body, "QUERY")
        config = job.resource["configuration"]
        query_config = config["query"]
        self.store.register_job(job)
        if query_config.get("useLegacySql"):
            self.store.fail_job(job, invalid("The fake only supports GoogleSQL (useLegacySql=false)"))
        elif query_config.get("destinationTable"):
            self.store.fail_job(job, invalid("destinationTable is not supported by the fake"))
        else:
            self._run_logged(job, query_config, "jobs.insert")
        if config.get("dryRun"):
            job.result = None
        return 200, job.resource, {}

    def _run_logged(self, job: Job, query_config: Mapping[str, Any], api: str) -> None:
        params = query_config.get("queryParameters") or []
        self.store.run_query_job(job, query_config.get("query", ""), params,
                                 query_config.get("defaultDataset"))
        self.log_query(QueryRecord(
            sql=query_config.get("query", ""),
            parameters={p.get("name") or str(i): (p.get("parameterValue") or {}).get("value")
                        for i, p in enumerate(params)},
            job_id=job.resource["jobReference"]["jobId"], api=api,
            translated=job.result.translated if job.result else None,
            error=job.error.message if job.error else None))

    def list_jobs(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        with self.store.lock:
            jobs = [j.resource for (p, _), j in self.store.jobs.items() if p == m["project"]]
        return 200, {"kind": "bigquery#jobList", "jobs": jobs}, {}

    def get_job(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        return 200, self.store.get_job(m["project"], m["job"]).resource, {}

    def cancel_job(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        job = self.store.get_job(m["project"], m["job"]).resource
        return 200, {"kind": "bigquery#jobCancelResponse", "job": job}, {}

    def delete_job(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        self.store.get_job(m["project"], m["job"])
        with self.store.lock:
            del self.store.jobs[(m["project"], m["job"])]
        return 204, None, {}

    def query(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        """jobs.query: runs synchronously and answers with the first page."""
        body = body or {}
        request_id = body.get("requestId")
        with self._lock:
            if request_id and request_id in self._request_ids:
                return 200, self._request_ids[request_id], {}  # BigQuery dedups requestId.
        if body.get("useLegacySql"):
            raise invalid("The fake only supports GoogleSQL (useLegacySql=false)")
        query_config = {k: body[k] for k in ("query", "queryParameters", "parameterMode",
                                             "defaultDataset", "useLegacySql") if k in body}
        job = self.store.new_job(m["project"], {
            "jobReference": {"projectId": m["project"], "location": body.get("location")},
            "configuration": {"query": query_config}}, "QUERY")
        self._run_logged(job, query_config, "jobs.query")
        self.store.register_job(job)
        if job.error is not None:
            raise job.error  # jobs.query reports failed queries as HTTP errors.
        int64_ts = bool((body.get("formatOptions") or {}).get("useInt64Timestamp"))
        response = self._results_page(job, 0, body.get("maxResults"), int64_ts, "bigquery#queryResponse")
        if body.get("dryRun"):
            response.pop("rows", None)
        if request_id:
            with self._lock:
                self._request_ids[request_id] = response
        return 200, response, {}

    def get_query_results(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        job = self.store.get_job(m["project"], m["job"])
        if job.error is not None:
            raise job.error
        if job.result is None:
            raise invalid(f"Job {m['job']} is not a query job with results")
        start = _int_param(q, "pageToken") or _int_param(q, "startIndex") or 0
        response = self._results_page(job, start, _int_param(q, "maxResults"),
                                      _bool_param(q, "formatOptions.useInt64Timestamp"),
                                      "bigquery#getQueryResultsResponse")
        return 200, response, {}

    @staticmethod
    def _results_page(job: Job, start: int, max_results: int | None, int64_ts: bool,
                      kind: str) -> dict[str, Any]:
        result = job.result
        assert result is not None
        base: dict[str, Any] = {
            "kind": kind, "schema": {"fields": result.fields},
            "jobReference": job.resource["jobReference"], "jobComplete": True,
            "totalBytesProcessed": "0", "cacheHit": False,
            "queryId": job.resource["jobReference"]["jobId"],
        }
        if result.dml_affected_rows is not None:
            base["numDmlAffectedRows"] = str(result.dml_affected_rows)
        return page_of_rows(result.fields, result.rows, start, max_results, int64_ts, base)

    # -- uploads (load jobs) ----------------------------------------------------

    def upload_start(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        upload_type = (q.get("uploadType") or [""])[0]
        if upload_type == "multipart":
            metadata, data = _parse_multipart(body, h.get("Content-Type", ""))
            return 200, self._finish_load(m["project"], metadata, data), {}
        if upload_type == "resumable":
            if not (q.get("upload_id")):
                upload_id = uuid.uuid4().hex
                metadata = json.loads(body or b"{}")
                with self._lock:
                    self._uploads[upload_id] = _UploadSession(m["project"], metadata)
                location = (f"http://{h.get('Host')}/upload/bigquery/v2/projects/{m['project']}"
                            f"/jobs?uploadType=resumable&upload_id={upload_id}")
                return 200, None, {"Location": location}
        raise invalid(f"Unsupported uploadType {upload_type!r}")

    def upload_chunk(self, m: Mapping[str, str], q: Mapping, body: Any, h: Mapping) -> Reply:
        """One PUT of the resumable protocol: 308 + Range until the last byte."""
        upload_id = (q.get("upload_id") or [""])[0]
        with self._lock:
            session = self._uploads.get(upload_id)
        if session is None:
            raise ApiError(404, "notFound", f"Not found: Upload session {upload_id}")
        if session.response is not None:
            return 200, session.response, {}
        chunk = body or b""
        match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", h.get("Content-Range", "").strip())
        if match is None:
            raise invalid(f"Invalid Content-Range {h.get('Content-Range')!r}")
        first, _, total = match.groups()
        if first is not None:
            if int(first) > len(session.data):
                raise invalid(f"Chunk starts at {first} but only {len(session.data)} bytes arrived")
            del session.data[int(first):]
            session.data.extend(chunk)
        if total != "*" and len(session.data) >= int(total):
            session.response = self._finish_load(session.project, session.metadata, bytes(session.data))
            return 200, session.response, {}
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return 308, None, headers

    def _finish_load(self, project: str, metadata: Mapping[str, Any], data: bytes) -> dict[str, Any]:
        job = self.store.new_job(project, metadata, "LOAD")
        if "load" not in job.resource["configuration"]:
            raise invalid("Upload metadata must describe a load job")
        self.store.register_job(job)
        self.store.run_load_job(job, data)
        return job.resource


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], bytes]:
    """Split the multipart/related body google-resumable-media sends."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None or not body:
        raise invalid("Multipart upload without boundary")
    delimiter = b"--" + match.group(1).encode()
    parts = [p for p in body.split(delimiter)[1:] if p.strip() not in (b"--", b"")]
    if len(parts) < 2:
        raise invalid("Multipart upload needs metadata and media parts")

    def payload(part: bytes) -> bytes:
        content = part.split(b"\r\n\r\n", 1)[1]
        return content[:-2] if content.endswith(b"\r\n") else content

    return json.loads(payload(parts[0])), payload(parts[1])


def _match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in _ROUTES:
        match = route[1].match(path)
        if match and method in route[0].split():
            return route, match.groupdict()
    return None


def _refine_op(name: str, op: str, body: Any) -> str:
    """jobs.insert counts as "query" or "load" depending on its configuration."""
    if name == "insert_job" and isinstance(body, dict):
        config = body.get("configuration") or {}
        return "query" if "query" in config else "load" if "load" in config else op
    return op


class _Handler(BaseHTTPRequestHandler):
    """Routes REST calls to BigQueryFake methods and applies faults."""

    wire: Wire
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data.extend(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        raw = self._read_body()
        route = _match_route(method, path)
        record = RequestRecord(method, path, query, route[0][3] if route else "unknown")
        self.wire.log_request(record)
        if route is None:
            record.status = 404
            self._send(404, ApiError(404, "notFound", f"Not found: {method} {path}").body(), {})
            return
        (_, _, name, _), groups = route
        try:
            body = raw if path.startswith("/upload/") or not raw else json.loads(raw)
        except ValueError as exc:
            record.status = 400
            self._send(400, ApiError(400, "parseError", f"Parse error: {exc}").body(), {})
            return
        record.op = _refine_op(name, record.op, body)
        table = f"{groups['dataset']}.{groups['table'].split('$')[0]}" if "table" in groups else None
        faults = self.wire.take_faults(record.op, table, False)
        fault = faults[0] if faults else None
        record.fault = fault.kind if fault else None
        if fault is None or fault.after_processing:
            status, payload, headers = self._call(name, method, groups, query, body)
        if fault is not None:
            self._fail(fault, record)
            return
        record.status = status
        self._send(status, payload, headers)

    def _call(self, name: str, method: str, groups: dict[str, str], query: dict[str, list[str]],
              body: Any) -> Reply:
        handler = getattr(self.wire.api, name)
        try:
            if name in ("dataset", "table"):
                return handler(groups, query, body, self.headers, method)
            return handler(groups, query, body, self.headers)
        except ApiError as exc:
            return exc.status, exc.body(), {}
        except Exception:  # A fake bug: non-retryable reason so clients fail fast.
            error = ApiError(500, "fakeInternalError", traceback.format_exc())
            return 500, error.body(), {}

    def _fail(self, fault: Fault, record: RequestRecord) -> None:
        if fault.kind == "timeout":
            self.wire.hold(fault.hold)
        if fault.kind in ("timeout", "reset"):
            self.close_connection = True  # Drop the connection without a response.
            return
        status = int(fault.kind.split("_")[1])
        reason = fault.reason or _FAULT_REASONS.get(status, "backendError")
        message = fault.message or ("Error encountered during execution. Retrying may solve the "
                                    f"problem. (fault injected into {record.op})")
        record.status = status
        self._send(status, ApiError(status, reason, message).body(), {})

    def _send(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


@dataclasses.dataclass
class Wire:
    """What the request handler needs from BigQueryFake."""

    api: RestApi
    take_faults: Callable[[str, str | None, bool], list[Fault]]
    log_request: Callable[[RequestRecord], None]
    hold: Callable[[float], None]


def make_server(wire: Wire, port: int) -> ThreadingHTTPServer:
    """A threaded server on 127.0.0.1 whose handler threads never block exit."""
    handler = type("BoundHandler", (_Handler,), {"wire": wire})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server
