"""A Loki push API fake on 127.0.0.1, with fault injection.

    fake = LokiFake(username="u", password="p").start()
    fake.set_fault("http_429", count=1, retry_after=1)   # or dead / slow / http_500 ...
    ... fake.entries() -> [(labels, ns_ts, line), ...]; fake.pushes -> accepted POSTs
    fake.stop()

Also runnable: `python -m tests.fakes.loki_fake --port 3100` prints each pushed line.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from tests.fakes.signals import stop_on_interrupt_or_term

PUSH_PATH = "/loki/api/v1/push"
Entry = tuple[dict[str, str], int, str]


@dataclass
class Fault:
    """`mode` is dead | slow | http_<status>; it expires after `count` requests or at `until`."""

    mode: str
    count: int | None = None
    until: float | None = None
    delay: float = 10.0
    retry_after: str | None = None

    def active(self) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        return self.until is None or time.monotonic() < self.until


@dataclass
class RequestLog:
    """What the fake saw, for assertions on headers and timing."""

    at: float
    path: str
    headers: dict[str, str]
    outcome: str  # "204", "401", "429", "reset", "slow" (on arrival) ...
    entries: int = 0


@dataclass
class _State:
    username: str | None
    password: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    entries: list[Entry] = field(default_factory=list)
    requests: list[RequestLog] = field(default_factory=list)
    pushes: int = 0
    fault: Fault | None = None
    on_entry: Callable[[Entry], None] | None = None

    def take_fault(self) -> Fault | None:
        """The fault applying to this request, consuming one unit of its count."""
        with self.lock:
            fault = self.fault
            if fault is None or not fault.active():
                self.fault = None
                return None
            if fault.count is not None:
                fault.count -= 1
            return fault


def parse_push(body: bytes) -> list[Entry]:
    """Validate a v1 JSON push body the way Loki would; ValueError means 400."""
    doc = json.loads(body)
    streams = doc.get("streams") if isinstance(doc, dict) else None
    if not isinstance(streams, list):
        raise ValueError("missing 'streams' list")
    entries: list[Entry] = []
    for stream in streams:
        labels, values = stream.get("stream"), stream.get("values")
        if not isinstance(labels, dict) or not labels or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError("stream labels must be a non-empty str->str object")
        if not isinstance(values, list):
            raise ValueError("values must be a list")
        for value in values:
            if not (isinstance(value, list) and len(value) in (2, 3) and isinstance(value[0], str)
                    and value[0].isdigit() and isinstance(value[1], str)):
                raise ValueError(f"bad value {value!r:.80}")
            entries.append((dict(labels), int(value[0]), value[1]))
    return entries


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like the real thing

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        state = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = state.take_fault()
        if fault is not None and fault.mode == "dead":
            self._reset(state, headers)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if fault is not None and fault.mode == "slow":
            self._record(state, headers, "slow", 0)  # visible while it is still hanging
            if state.stopping.wait(fault.delay):
                return
        status, entries, extra = self._decide(state, headers, body, fault)
        if status == 204:
            with state.lock:
                state.entries.extend(entries)
                state.pushes += 1
            if state.on_entry:
                for entry in entries:
                    state.on_entry(entry)
        self._record(state, headers, str(status), len(entries))
        self._answer(status, extra)

    def _decide(self, state: _State, headers: dict[str, str], body: bytes, fault: Fault | None
                ) -> tuple[int, list[Entry], dict[str, str]]:
        if self.path != PUSH_PATH:
            return 404, [], {}
        if state.username is not None and not self._authorised(state, headers):
            return 401, [], {"WWW-Authenticate": 'Basic realm="loki"'}
        if fault is not None and fault.mode.startswith("http_"):
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return int(fault.mode[5:]), [], extra
        if not headers.get("content-type", "").startswith("application/json"):
            return 415, [], {}
        try:
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            return 204, parse_push(body), {}
        except (ValueError, OSError, EOFError):
            return 400, [], {}

    @staticmethod
    def _authorised(state: _State, headers: dict[str, str]) -> bool:
        expected = base64.b64encode(f"{state.username}:{state.password or ''}".encode()).decode()
        return headers.get("authorization") == f"Basic {expected}"

    def _answer(self, status: int, extra: dict[str, str]) -> None:
        body = b"" if status == 204 else f"fake loki: {status}\n".encode()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self, state: _State, headers: dict[str, str]) -> None:
        """Abortive close: SO_LINGER 0 makes close() send RST instead of FIN."""
        self._record(state, headers, "reset", 0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _record(self, state: _State, headers: dict[str, str], outcome: str, n: int) -> None:
        with state.lock:
            state.requests.append(RequestLog(time.monotonic(), self.path, headers, outcome, n))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a `slow` request thread must not hold up stop()
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and client timeouts are expected here


class LokiFake:
    """Loopback Loki push endpoint; see the module docstring."""

    def __init__(self, port: int = 0, *, username: str | None = None, password: str | None = None) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = _State(username, password)
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> _State:
        return self._server.state

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PUSH_PATH}"

    def start(self) -> LokiFake:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="loki-fake",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LokiFake:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- assertions ----

    def entries(self) -> list[Entry]:
        with self.state.lock:
            return list(self.state.entries)

    @property
    def pushes(self) -> int:
        with self.state.lock:
            return self.state.pushes

    @property
    def requests(self) -> list[RequestLog]:
        with self.state.lock:
            return list(self.state.requests)

    def wait_for_entries(self, n: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.state.entries) >= n:
                return True
            time.sleep(0.01)
        return len(self.state.entries) >= n

    # ---- faults ----

    def set_fault(self, mode: str, *, count: int | None = None, duration: float | None = None,
                  delay: float = 10.0, retry_after: float | None = None) -> None:
        """Apply `mode` to the next `count` requests and/or for `duration` seconds (else until cleared)."""
        if mode not in ("dead", "slow") and not (mode.startswith("http_") and mode[5:].isdigit()):
            raise ValueError(f"unknown fault mode {mode!r}")
        until = time.monotonic() + duration if duration is not None else None
        header = None
        if retry_after is not None:  # HTTP wants delta-seconds as an integer when it is one
            header = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        with self.state.lock:
            self.state.fault = Fault(mode, count, until, delay, header)

    def clear_fault(self) -> None:
        with self.state.lock:
            self.state.fault = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loki push API fake (127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--username")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    stop_on_interrupt_or_term()
    fake = LokiFake(args.port, username=args.username, password=args.password)
    fake.state.on_entry = lambda entry: print(json.dumps(entry[0], sort_keys=True), entry[1], entry[2], flush=True)
    print(f"fake loki listening on {fake.url}", flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()


if __name__ == "__main__":
    main()
