"""Structured logging: JSON lines, secret redaction, and the worker -> supervisor queue path.

Every process (supervisor and workers) logs into one multiprocessing queue through a
QueueHandler; the supervisor runs a single QueueListener that formats each record once
per handler (stdout, Loki). That gives one ordering and one formatting path, and keeps
all I/O off the collection threads.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, Optional, TextIO, Union

from supervisor.loki import LokiConfig, LokiHandler

DEFAULT_EVENT = "log"
SUPERVISOR_EXCHANGE = "supervisor"  # Loki `exchange` label for the supervisor's own records
NOISY_LOGGERS = ("urllib3", "google", "ccxt")
CONTEXT_KEYS = ("exchange", "mode", "symbol", "timeframe")
# Set by the worker filter so the Loki label can tell worker records from supervisor
# records that merely mention an exchange. Underscore keys never reach the JSON line.
ORIGIN_ATTR = "_log_origin"
STATS_KEYS = ("sent", "dropped", "failed_batches", "retries", "pending")

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# Keys the formatter owns; a caller extra with one of these names is kept as extra_<key>.
_OWN_KEYS = frozenset({"ts", "level", "event", "message", "service_name", "environment", "logger", "exc", "stack"})
_JSON_SCALARS = (str, int, float, bool, type(None))
_EXC_FORMATTER = logging.Formatter()

Level = Union[int, str]


# ---- formatting -------------------------------------------------------------------


def _safe_str(value: Any) -> str:
    """str() that cannot raise: a broken __str__ must not lose the whole line."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_safe_str, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    """The value itself when it serialises cleanly, else its str() (cycles, NaN, odd keys)."""
    try:
        _dumps(value)
        return value
    except (TypeError, ValueError, RecursionError):
        return _safe_str(value)


def format_ts(created: float) -> str:
    """ISO-8601 UTC with milliseconds; seconds and millis come from one integer so they agree."""
    seconds, millis = divmod(int(created * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args must not drop the line
        return f"{_safe_str(record.msg)} (unformattable args: {_safe_str(record.args)})"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}


def exception_text(record: logging.LogRecord) -> Optional[str]:
    if record.exc_text:
        return record.exc_text
    if record.exc_info and record.exc_info[0] is not None:
        return _EXC_FORMATTER.formatException(record.exc_info)
    return None


class Redactor:
    """Replaces known secrets and URL credentials (`scheme://user:pass@`) with `***`."""

    MIN_LENGTH = 4  # shorter "secrets" would shred ordinary text
    URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@:\"'\\]*:[^\s/@\"'\\]+@")

    def __init__(self, secrets: Iterable[Optional[str]] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not secret or len(str(secret)) < self.MIN_LENGTH:
                continue
            secret = str(secret)
            # The line is JSON, so a secret with quotes, backslashes or non-ASCII
            # characters may appear in escaped form.
            forms.update({secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]})
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub("***", text)
        if "://" in text:
            text = self.URL_CREDENTIALS.sub(r"\g<scheme>***:***@", text)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record; redaction runs on the final serialised line."""

    def __init__(self, *, service_name: str, environment: str, redactor: Optional[Redactor] = None) -> None:
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
            "ts": format_ts(record.created),
            "level": record.levelname.lower(),
            "event": _safe_str(getattr(record, "event", None) or DEFAULT_EVENT),
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


def log_event(logger: logging.Logger, level: Level, event: str, message: str, *, exc_info: Any = None,
              **fields: Any) -> None:
    """`log_event(log, "info", "sink_write_ok", "wrote rows", symbol="BTC/USDT", rows=3)`."""
    levelno = level if isinstance(level, int) else logging.getLevelNamesMapping().get(str(level).upper())
    if levelno is None:
        raise ValueError(f"unknown log level: {level!r}")
    # Names LogRecord owns (name, msg, module, ...) would make makeRecord raise.
    extra = {f"{k}_" if k in _RECORD_ATTRS else k: v for k, v in fields.items()}
    extra["event"] = event
    logger.log(levelno, message, exc_info=exc_info, extra=extra, stacklevel=2)


# ---- producer side (worker processes and the supervisor itself) ---------------------


def _picklable(value: Any) -> Any:
    """Keep JSON-able values as they are; anything else crosses the queue as str().

    An extra that fails to pickle is lost in the queue's feeder thread, and one that
    pickles but fails to unpickle would break the listener, so only plain data travels.
    """
    if isinstance(value, _JSON_SCALARS):
        return value
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError, RecursionError):
        return _safe_str(value)


class PicklingQueueHandler(logging.handlers.QueueHandler):
    """QueueHandler whose records survive pickling yet keep their extra fields."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)  # other handlers may still want the original
        record.msg = safe_message(record)
        record.args = None
        if record.exc_info:
            record.exc_text = exception_text(record)
            record.exc_info = None  # tracebacks do not pickle; the text does
        for key, value in extra_fields(record).items():
            setattr(record, key, _picklable(value))
        return record


class ContextFilter(logging.Filter):
    """Stamps fixed fields (exchange, mode) on every record passing the handler."""

    def __init__(self, **fields: Any) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            setattr(record, key, value)
        return True


def _level(level: Level) -> Level:
    return level.upper() if isinstance(level, str) else level


def _install_root_handler(handler: logging.Handler, level: Level) -> None:
    """Make `handler` the root logger's only handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(_level(level))
    # Chatty at INFO/DEBUG; urllib3 would also echo the Loki sender's own requests.
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_worker_logging(queue: Any, *, exchange: str, mode: str, level: Level = "INFO") -> None:
    """Route every record of this worker process into the supervisor's queue."""
    handler = PicklingQueueHandler(queue)
    handler.addFilter(ContextFilter(exchange=exchange, mode=mode, **{ORIGIN_ATTR: "worker"}))
    _install_root_handler(handler, level)


def configure_supervisor_logging(queue: Any, level: Level = "INFO") -> logging.Handler:
    """Route the supervisor's own records through the same queue as the workers'."""
    handler = PicklingQueueHandler(queue)
    _install_root_handler(handler, level)
    return handler


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
    return {"exchange": _safe_str(exchange or SUPERVISOR_EXCHANGE), "level": record.levelname.lower()}


class LogListener:
    """Owns the QueueListener and its handlers; stop() drains, then flushes Loki (bounded)."""

    def __init__(self, listener: logging.handlers.QueueListener, stdout_handler: logging.Handler,
                 loki_handler: Optional[LokiHandler]) -> None:
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


def start_log_listener(queue: Any, *, service_name: str, environment: str, loki: Optional[LokiConfig],
                       secrets: Iterable[Optional[str]], stream: Optional[TextIO] = None,
                       level: Level = "INFO") -> LogListener:
    """Start the supervisor's single consumer: JSON to `stream` (default stdout) and Loki."""
    formatter = JsonFormatter(service_name=service_name, environment=environment, redactor=Redactor(secrets))
    stdout_handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    stdout_handler.setFormatter(formatter)
    stdout_handler.setLevel(_level(level))
    handlers: list[logging.Handler] = [stdout_handler]
    loki_handler = None
    if loki is not None:
        loki_handler = LokiHandler(loki, labels={"service_name": service_name, "environment": environment},
                                   record_labels=loki_record_labels)
        loki_handler.setFormatter(formatter)  # the Loki line is the stdout line
        loki_handler.setLevel(_level(level))
        handlers.append(loki_handler)
    listener = _SafeQueueListener(queue, *handlers, respect_handler_level=True)
    listener.start()
    return LogListener(listener, stdout_handler, loki_handler)
