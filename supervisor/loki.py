"""Non-blocking, batching Loki push handler.

python-logging-loki 0.3.1 is replaced, not wrapped: its handler POSTs one record per
call, synchronously, with no timeout, no retry and no batching, and it stamps entries
with the send time and adds a per-logger label. Nothing in it survives those fixes, so
this is a small handler on `requests`: emit() only appends to a bounded deque, and one
daemon thread ships gzip'd batches with timeouts, backoff and drop accounting.
"""

from __future__ import annotations

import gzip as gzip_lib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from core.retry import retry_after_seconds

PUSH_PATH = "/loki/api/v1/push"
# Statuses worth retrying: Loki is overloaded or restarting. Any other 4xx means
# this batch will never be accepted (bad payload, auth, entry too old).
RETRYABLE_STATUSES = frozenset({408, 429})
# Retry-After is obeyed up to this; a longer ask would just let the buffer overflow.
MAX_RETRY_AFTER = 60.0

Labels = tuple[tuple[str, str], ...]
Entry = tuple[int, Labels, str]  # (ns timestamp, sorted label pairs, line)


@dataclass(frozen=True)
class LokiConfig:
    """Where and how to push; `url` is the full push endpoint."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # keep out of logs
    batch_size: int = 500
    flush_interval: float = 1.0
    timeout: float = 5.0
    max_buffer: int = 10000
    # None: a batch Loki could not take for a passing reason (5xx, 429, network) is retried
    # until it lands or shutdown; only the bounded buffer overflowing drops records.
    max_retries: int | None = None
    gzip: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LokiConfig | None:
        """Build from LOKI_URL / LOKI_USERNAME / LOKI_PASSWORD; None when LOKI_URL is unset."""
        url = (environ.get("LOKI_URL") or "").strip()
        if not url:
            return None
        # A bare base URL (as Grafana Cloud shows it) gets the push path appended.
        if urlsplit(url).path in ("", "/"):
            url = url.rstrip("/") + PUSH_PATH
        username = (environ.get("LOKI_USERNAME") or "").strip() or None
        password = environ.get("LOKI_PASSWORD") or None
        return cls(url=url, username=username, password=password)

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username is None and self.password is None:
            return None
        return (self.username or "", self.password or "")


def level_label(record: logging.LogRecord) -> dict[str, str]:
    """Default per-record labels: just the lowercase level."""
    return {"level": record.levelname.lower()}


def build_payload(entries: list[Entry]) -> dict:
    """Group entries into one stream per label set, values in time order (Loki wants that)."""
    streams: dict[Labels, list[tuple[int, str]]] = {}
    for ts, labels, line in entries:
        streams.setdefault(labels, []).append((ts, line))
    return {
        "streams": [
            {"stream": dict(labels), "values": [[str(ts), line] for ts, line in sorted(values, key=lambda v: v[0])]}
            for labels, values in streams.items()
        ]
    }


class LokiHandler(logging.Handler):
    """Buffers formatted records and ships them to Loki from a daemon thread.

    Accounting invariant: every emitted record ends up counted in exactly one of
    `sent`, `dropped` (buffer overflow, rejected or given-up batches, shutdown) or
    `pending` (still buffered or in flight).
    """

    def __init__(
        self,
        config: LokiConfig,
        *,
        labels: Mapping[str, str] | None = None,
        record_labels: Callable[[logging.LogRecord], Mapping[str, str]] = level_label,
        level: int = logging.NOTSET,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        close_timeout: float = 3.0,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(level)
        self.config = config
        self._static_labels = dict(labels or {})
        self._record_labels = record_labels
        self._clock = clock
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._close_timeout = close_timeout
        self._session = session or requests.Session()
        self._session.auth = config.auth
        self._buffer: deque[Entry] = deque(maxlen=max(1, config.max_buffer))
        self._lock = threading.Lock()  # guards buffer + counters; never held during I/O
        self._progress = threading.Condition(self._lock)
        self._counters = {"sent": 0, "dropped": 0, "failed_batches": 0, "retries": 0}
        self._in_flight = 0
        self._closed = False
        self._deadline: float | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()  # "ship now": batch full, flush or close
        self._closing = threading.Event()  # cuts normal backoff sleeps short
        self._abort = threading.Event()  # close() gave up: stop touching the network
        self._thread = threading.Thread(target=self._run, name="loki-sender", daemon=True)
        self._thread.start()

    # ---- producer side (runs on the log listener thread) -------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Format and enqueue; O(1), never blocks on the network, never raises."""
        try:
            entry = (int(record.created * 1e9), self._labels_for(record), self.format(record))
            with self._lock:
                if self._closed or len(self._buffer) == self._buffer.maxlen:
                    self._counters["dropped"] += 1  # closed, or deque evicts the oldest
                if not self._closed:
                    self._buffer.append(entry)
                full = len(self._buffer) >= self.config.batch_size
            if full and not self._wake.is_set():
                self._wake.set()
        except Exception:  # a log call must never fail because of Loki
            with self._lock:
                self._counters["dropped"] += 1

    def _labels_for(self, record: logging.LogRecord) -> Labels:
        labels = dict(self._static_labels)
        labels.update({k: str(v) for k, v in self._record_labels(record).items()})
        return tuple(sorted(labels.items()))

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._counters, "pending": len(self._buffer) + self._in_flight}

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything buffered now; wait at most `timeout`. True when drained."""
        timeout = self._close_timeout if timeout is None else timeout
        if self._closed:  # close() already did the final, bounded flush
            return self._drained()
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(self._drained, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Final flush bounded by `timeout`; what cannot be shipped by then is dropped."""
        timeout = self._close_timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = self._clock() + timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # stuck in a POST: abandon it, it is a daemon
            self._abort.set()
        with self._lock:
            self._counters["dropped"] += len(self._buffer)
            self._buffer.clear()
        if not self._thread.is_alive():
            self._session.close()  # the session belongs to the sender thread
        super().close()

    def _drained(self) -> bool:
        return not self._buffer and not self._in_flight

    # ---- sender thread -----------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.config.flush_interval)
            self._wake.clear()
            self._drain()
        self._drain()  # final pass, bounded by the close deadline

    def _drain(self) -> None:
        while not self._abort.is_set():
            batch = self._take_batch()
            if not batch:
                return
            ok = self._deliver(batch)
            with self._progress:
                if ok:
                    self._counters["sent"] += len(batch)
                else:
                    self._counters["dropped"] += len(batch)
                    self._counters["failed_batches"] += 1
                self._in_flight = 0
                self._progress.notify_all()

    def _take_batch(self) -> list[Entry]:
        with self._progress:
            n = min(self.config.batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(n)]
            self._in_flight = n
            if not batch:
                self._progress.notify_all()  # wake flush() waiters on an empty buffer
            return batch

    def _deliver(self, batch: list[Entry]) -> bool:
        """POST one batch, retrying transient failures; True when Loki accepted it."""
        body, headers = self._encode(batch)
        attempt = 0
        while True:
            timeout = self._request_timeout()
            if timeout is None:
                return False  # shutdown deadline passed
            verdict, retry_after = self._post(body, headers, timeout)
            if verdict != "retry":
                return verdict == "ok"
            attempt += 1
            limit = self.config.max_retries
            if (limit is not None and attempt > limit) or self._abort.is_set():
                return False
            with self._lock:
                self._counters["retries"] += 1
            self._pause(self._backoff(attempt, retry_after))

    def _encode(self, batch: list[Entry]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(build_payload(batch), separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.config.gzip:
            body = gzip_lib.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return body, headers

    def _post(self, body: bytes, headers: dict[str, str], timeout: float) -> tuple[str, float | None]:
        """One attempt -> ("ok" | "retry" | "reject", Retry-After seconds)."""
        try:
            resp = self._session.post(self.config.url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:  # refused, reset, timed out
            self.last_error = f"{type(exc).__name__}: {exc}"
            return "retry", None
        if 200 <= resp.status_code < 300:
            return "ok", None
        self.last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        if resp.status_code in RETRYABLE_STATUSES or resp.status_code >= 500:
            return "retry", retry_after_seconds(resp.headers.get("Retry-After"))
        return "reject", None

    def _request_timeout(self) -> float | None:
        """Per-POST timeout; during shutdown capped by what is left of the deadline."""
        if self._deadline is None:
            return self.config.timeout
        remaining = self._deadline - self._clock()
        return min(self.config.timeout, remaining) if remaining > 0.01 else None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return min(self._backoff_base * 2 ** (attempt - 1), self._backoff_max)

    def _pause(self, delay: float) -> None:
        """Backoff sleep: cut short when close() starts, then bounded by its deadline."""
        if not self._closing.is_set():
            self._closing.wait(delay)
            if not self._closing.is_set():
                return
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - self._clock()))
        self._abort.wait(delay)
