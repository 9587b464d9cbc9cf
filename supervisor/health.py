"""``GET /healthz`` (JSON, 200 or 503) and ``GET /metrics`` (Prometheus text) on one port."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

log = logging.getLogger(__name__)

Snapshot = Callable[[], dict[str, Any]]

_METRICS = (
    ("tda_worker_up", "gauge", "1 when the worker process is alive and reporting", "healthy"),
    ("tda_worker_restarts_total", "counter", "Worker restarts since the supervisor started", "restarts"),
    ("tda_rows_written_total", "counter", "Rows written to the store", "rows_written"),
    ("tda_rows_rejected_total", "counter", "Candles or rows rejected as invalid", "rows_rejected"),
    ("tda_worker_rss_bytes", "gauge", "Resident set size of the worker process", "rss_bytes"),
    ("tda_worker_uss_bytes", "gauge", "Unique set size of the worker process", "uss_bytes"),
    ("tda_worker_last_success_timestamp_seconds", "gauge", "When a cycle last stored data", "last_success"),
    ("tda_rate_budget_ratio", "gauge",
     "LIVE request time the series need per interval at the exchange's pace, over the interval "
     "(above 1: they do not fit)", "rate_budget_ratio"),
)


def render_metrics(snapshot: dict[str, Any], extra: dict[str, float] | None = None) -> str:
    lines = []
    for name, kind, help_text, key in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for exchange, worker in snapshot["workers"].items():
            value = worker.get(key)
            if value is None:
                continue
            lines.append(f'{name}{{exchange="{exchange}"}} {float(value):g}')
    for name, value in (extra or {}).items():
        lines += [f"# TYPE {name} untyped", f"{name} {float(value):g}"]
    return "\n".join(lines) + "\n"


class HealthServer:
    def __init__(self, port: int, snapshot: Snapshot, extra_metrics: Callable[[], dict[str, float]],
                 host: str = "0.0.0.0") -> None:
        self._snapshot = snapshot
        self._extra = extra_metrics
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server._serve(self)

            def log_message(self, *args: Any) -> None:  # probes every few seconds: not news
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health", daemon=True)

    def start(self) -> "HealthServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        try:
            snapshot = self._snapshot()
            if request.path.split("?")[0] == "/healthz":
                body = json.dumps(snapshot, default=str).encode()
                status, ctype = (200 if snapshot["status"] == "ok" else 503), "application/json"
            elif request.path.split("?")[0] == "/metrics":
                body = render_metrics(snapshot, self._extra()).encode()
                status, ctype = 200, "text/plain; version=0.0.4"
            else:
                body, status, ctype = b"not found\n", 404, "text/plain"
        except Exception as exc:  # a health probe must never take the supervisor down
            log.exception("health endpoint failed", extra={"event": "health_error"})
            body, status, ctype = f"error: {exc}\n".encode(), 500, "text/plain"
        request.send_response(status)
        request.send_header("Content-Type", ctype)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
