"""The consumer side of logging: the supervisor's listener, JSON lines, stdout and Loki.

Every process (supervisor and workers) logs into one queue through a QueueHandler
(:mod:`core.logsetup`); the supervisor runs a single QueueListener that formats each record
once per handler (stdout, Loki). That gives one ordering and one formatting path, and keeps
all I/O off the collection threads.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from core.logsetup import (
    ORIGIN_ATTR,
    Level,
    Redactor,
    exception_text,
    extra_fields,
    level_name,
    safe_message,
    safe_str,
)
from core.timefmt import iso_utc
from supervisor.loki import LokiConfig, LokiHandler

DEFAULT_EVENT = "log"
SUPERVISOR_EXCHANGE = "supervisor"  # Loki `exchange` label for the supervisor's own records
CONTEXT_KEYS = ("exchange", "mode", "symbol", "timeframe")
LOG_FORMATS = ("json", "console")
STATS_KEYS = ("sent", "dropped", "failed_batches", "retries", "pending")

# Keys the formatter owns; a caller extra with one of these names is kept as extra_<key>.
_OWN_KEYS = frozenset({"ts", "level", "event", "message", "service_name", "environment", "logger", "exc", "stack"})


# ---- formatting -------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, default=safe_str, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    """The value itself when it serialises cleanly, else its str() (cycles, NaN, odd keys)."""
    try:
        _dumps(value)
        return value
    except (TypeError, ValueError, RecursionError):
        return safe_str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; redaction runs on the final serialised line."""

    def __init__(self, *, service_name: str, environment: str, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.service_name = service_name
        self.environment = environment
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        document = self.document(record)
        try:
            line = _dumps(document)
        except (TypeError, ValueError, RecursionError):
            line = _dumps({key: _jsonable(value) for key, value in document.items()})
        return self.redactor(line) if self.redactor else line

    def document(self, record: logging.LogRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ts": iso_utc(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "event": safe_str(getattr(record, "event", None) or DEFAULT_EVENT),
            "message": safe_message(record),
            "service_name": self.service_name,
            "environment": self.environment,
        }
        extras = extra_fields(record)
        extras.pop("event", None)
        for key in CONTEXT_KEYS:  # stable position for the fields people filter on
            if key in extras:
                doc[key] = extras.pop(key)
        doc["logger"] = record.name
        for key, value in extras.items():
            doc[f"extra_{key}" if key in _OWN_KEYS else key] = value
        exc = exception_text(record)
        if exc:
            doc["exc"] = exc
        if record.stack_info:
            doc["stack"] = record.stack_info
        return doc


class ConsoleFormatter(logging.Formatter):
    """One readable line per record for a person at a terminal: time, level, source, event,
    message, then the series and the other fields. Built from the JSON document, so the
    same redaction applies."""

    _SHOWN = frozenset({"ts", "level", "event", "message", "service_name", "environment", "logger",
                        "exchange", "mode", "symbol", "timeframe", "exc", "stack"})

    def __init__(self, json_formatter: JsonFormatter) -> None:
        super().__init__()
        self.json_formatter = json_formatter

    def format(self, record: logging.LogRecord) -> str:
        doc = self.json_formatter.document(record)
        source = doc.get("exchange") or doc.get("worker") or SUPERVISOR_EXCHANGE
        series = " ".join(str(doc[k]) for k in ("symbol", "timeframe") if doc.get(k))
        fields = " ".join(f"{k}={_dumps(v) if not isinstance(v, str) else v}"
                          for k, v in doc.items() if k not in self._SHOWN and v not in (None, "", [], {}))
        line = (f"{doc['ts'][11:23]} {doc['level'].upper():<8} {source:<11} {doc['event']}: {doc['message']}"
                + (f"  [{series}]" if series else "") + (f"  {fields}" if fields else ""))
        if doc.get("exc"):
            line += "\n" + doc["exc"]
        redactor = self.json_formatter.redactor
        return redactor(line) if redactor else line


# ---- consumer side (supervisor) -----------------------------------------------------


class _SafeQueueListener(logging.handlers.QueueListener):
    """A record that fails to unpickle must not kill the only logging thread."""

    def dequeue(self, block: bool) -> Any:
        try:
            return self.queue.get(block)
        except (OSError, EOFError):
            raise
        except Exception as exc:
            return logging.makeLogRecord({
                "name": __name__, "levelno": logging.ERROR, "levelname": "ERROR", "event": "log_record_undecodable",
                "msg": "a log record could not be decoded", "error": f"{type(exc).__name__}: {exc}"})


def loki_record_labels(record: logging.LogRecord) -> dict[str, str]:
    """Per-record Loki labels: the worker's exchange (or `supervisor`) and the level."""
    exchange = getattr(record, "exchange", None) if getattr(record, ORIGIN_ATTR, None) == "worker" else None
    return {"exchange": safe_str(exchange or SUPERVISOR_EXCHANGE), "level": record.levelname.lower()}


class LogListener:
    """Owns the QueueListener and its handlers; stop() drains, then flushes Loki (bounded)."""

    def __init__(self, listener: logging.handlers.QueueListener, stdout_handler: logging.Handler,
                 loki_handler: LokiHandler | None) -> None:
        self.listener = listener
        self.stdout_handler = stdout_handler
        self.loki_handler = loki_handler
        self._stopped = False

    def stop(self, timeout: float = 3.0) -> None:
        """Drain the queue to the handlers, then give Loki at most `timeout` seconds."""
        if self._stopped:
            return
        self._stopped = True
        self.listener.stop()  # enqueues the sentinel; everything before it is handled
        self.stdout_handler.flush()
        if self.loki_handler is not None:
            self.loki_handler.close(timeout)

    def stats(self) -> dict[str, int]:
        if self.loki_handler is None:
            return dict.fromkeys(STATS_KEYS, 0)
        return self.loki_handler.stats()


def stdout_format(requested: str | None, stream: TextIO) -> str:
    """``LOG_FORMAT`` when set, else console on a terminal and JSON lines anywhere else."""
    if requested:
        if requested not in LOG_FORMATS:
            raise ValueError(f"LOG_FORMAT={requested!r}: use one of {', '.join(LOG_FORMATS)}")
        return requested
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return "json"


def start_log_listener(queue: Any, *, service_name: str, environment: str, loki: LokiConfig | None,
                       secrets: Iterable[str | None], stream: TextIO | None = None,
                       level: Level = "INFO", log_format: str | None = None) -> LogListener:
    """Start the supervisor's single consumer: `stream` (default stdout) and Loki.

    Loki always gets the JSON line; stdout gets it too unless `log_format` (or a terminal)
    asks for the console form.
    """
    stream = stream if stream is not None else sys.stdout
    formatter = JsonFormatter(service_name=service_name, environment=environment, redactor=Redactor(secrets))
    stdout_handler = logging.StreamHandler(stream)
    stdout_handler.setFormatter(ConsoleFormatter(formatter) if stdout_format(log_format, stream) == "console"
                                else formatter)
    stdout_handler.setLevel(level_name(level))
    handlers: list[logging.Handler] = [stdout_handler]
    loki_handler = None
    if loki is not None:
        loki_handler = LokiHandler(loki, labels={"service_name": service_name, "environment": environment},
                                   record_labels=loki_record_labels)
        loki_handler.setFormatter(formatter)  # the Loki line is the stdout line
        loki_handler.setLevel(level_name(level))
        handlers.append(loki_handler)
    listener = _SafeQueueListener(queue, *handlers, respect_handler_level=True)
    listener.start()
    return LogListener(listener, stdout_handler, loki_handler)
