"""``GET /healthz`` (JSON, 200 or 503) and ``GET /metrics`` (Prometheus text) on one port.

The page of /metrics comes from :class:`supervisor.metrics.CollectorMetrics`.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

log = logging.getLogger(__name__)

Snapshot = Callable[[], dict[str, Any]]

class HealthServer:
    def __init__(self, port: int, snapshot: Snapshot, metrics: Callable[[], bytes],
                 host: str = "0.0.0.0", metrics_content_type: str = "text/plain; version=0.0.4") -> None:
        self._snapshot = snapshot
        self._metrics = metrics
        self._metrics_type = metrics_content_type
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

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        try:
            path = request.path.split("?")[0]
            if path == "/healthz":
                snapshot = self._snapshot()
                body = json.dumps(snapshot, default=str).encode()
                status, ctype = (200 if snapshot["status"] == "ok" else 503), "application/json"
            elif path == "/metrics":
                body, status, ctype = self._metrics(), 200, self._metrics_type
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
