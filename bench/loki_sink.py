"""A Loki push endpoint that accepts everything and can be killed and revived on its port.

The soak needs a Loki that dies; what it received does not matter, only that the collector
neither waits for it nor grows while it is gone.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.pushes += 1  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class LokiSink:
    def __init__(self) -> None:
        self.port = 0
        self.pushes = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/loki/api/v1/push"

    def start(self) -> LokiSink:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.pushes = 0  # type: ignore[attr-defined]
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="loki-sink", daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        """Close the port: pushes now meet a refused connection."""
        if self._server is not None:
            self.pushes += self._server.pushes  # type: ignore[attr-defined]
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def alive(self) -> bool:
        return self._server is not None
