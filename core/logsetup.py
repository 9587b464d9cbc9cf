"""The producer side of logging, shared by the supervisor and every worker process.

Every process logs into a queue through one QueueHandler; the supervisor's single listener
formats and ships the records. Records must survive pickling with their extra fields, and
secrets must never leave in a line: the redaction lives here beside the record helpers.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import re
from collections.abc import Iterable
from typing import Any, Union

NOISY_LOGGERS = ("urllib3", "google", "ccxt")
# Set by the worker filter so the Loki label can tell worker records from supervisor
# records that merely mention an exchange. Underscore keys never reach the JSON line.
ORIGIN_ATTR = "_log_origin"

# Attributes every LogRecord has; anything else on a record came from `extra`.
RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_JSON_SCALARS = (str, int, float, bool, type(None))
_EXC_FORMATTER = logging.Formatter()

Level = Union[int, str]


def safe_str(value: Any) -> str:
    """str() that cannot raise: a broken __str__ must not lose the whole line."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args must not drop the line
        return f"{safe_str(record.msg)} (unformattable args: {safe_str(record.args)})"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in RECORD_ATTRS and not k.startswith("_")}


def exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_text:
        return record.exc_text
    if record.exc_info and record.exc_info[0] is not None:
        return _EXC_FORMATTER.formatException(record.exc_info)
    return None


class Redactor:
    """Replaces known secrets and URL credentials (`scheme://user:pass@`) with `***`."""

    MIN_LENGTH = 4  # shorter "secrets" would shred ordinary text
    URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@:\"'\\]*:[^\s/@\"'\\]+@")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
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
        return safe_str(value)


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


def level_name(level: Level) -> Level:
    return level.upper() if isinstance(level, str) else level


def _install_root_handler(handler: logging.Handler, level: Level) -> None:
    """Make `handler` the root logger's only handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level_name(level))
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
