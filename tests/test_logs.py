"""JSON line shape, redaction, and the real spawn-process -> queue -> listener path."""

from __future__ import annotations

import io
import json
import logging
import math
import multiprocessing
import queue
import re
import threading
from typing import Any, Iterator

import pytest

from core.logsetup import Redactor, configure_supervisor_logging, configure_worker_logging
from supervisor.logs import JsonFormatter, LokiConfig, start_log_listener
from tests.fakes.loki_fake import LokiFake

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CORE_KEYS = {"ts", "level", "event", "message", "service_name", "environment"}
SECRET = "sk-live-0123456789abcdef"


class _Capture(logging.Handler):
    """Formats straight into a list, so each test sees exactly its own lines."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def docs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, _Capture]]:
    formatter = JsonFormatter(service_name="collector", environment="test", redactor=Redactor([SECRET, "abc"]))
    handler = _Capture(formatter)
    logger = logging.getLogger("tests.logs.capture")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


@pytest.fixture
def restore_root() -> Iterator[None]:
    """configure_*_logging rewires the root logger; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ---- line shape ---------------------------------------------------------------------


def test_line_has_contract_keys_and_extras(capture: tuple[logging.Logger, _Capture]) -> None:
    log, out = capture
    log.info("wrote %d rows", 3, extra={"event": "sink_write_ok", "symbol": "BTC/USDT", "timeframe": "1m",
                                        "rows": 3, "duration_ms": 12.5, "status": "ok"})
    log.warning("plain")
    first, second = out.docs()
    assert CORE_KEYS <= first.keys()
    assert TS_RE.match(first["ts"])
    assert first["level"] == "info" and first["event"] == "sink_write_ok"
    assert first["message"] == "wrote 3 rows"
    assert (first["service_name"], first["environment"]) == ("collector", "test")
    assert (first["symbol"], first["timeframe"], first["rows"], first["duration_ms"]) == ("BTC/USDT", "1m", 3, 12.5)
    assert second["event"] == "log" and second["level"] == "warning"
    assert "\n" not in out.lines[0]


def test_levels_are_lowercase(capture: tuple[logging.Logger, _Capture]) -> None:
    log, out = capture
    for method in (log.debug, log.info, log.warning, log.error, log.critical):
        method("x")
    assert [d["level"] for d in out.docs()] == ["debug", "info", "warning", "error", "critical"]


def test_traceback_goes_to_exc_not_message(capture: tuple[logging.Logger, _Capture]) -> None:
    log, out = capture
    try:
        raise RuntimeError("exchange said no")
    except RuntimeError:
        log.exception("fetch failed", extra={"event": "fetch_failed", "attempt": 2})
    (doc,) = out.docs()
    assert doc["message"] == "fetch failed"
    assert "Traceback (most recent call last)" in doc["exc"] and "RuntimeError: exchange said no" in doc["exc"]
    assert doc["attempt"] == 2 and doc["level"] == "error"


def test_non_serialisable_values_become_strings(capture: tuple[logging.Logger, _Capture]) -> None:
    class Weird:
        def __str__(self) -> str:
            return "weird!"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    log, out = capture
    log.info("odd values", extra={"obj": Weird(), "broken": Broken(), "raw": b"\x00\xff", "nan": math.nan,
                                  "cyclic": cyclic, "tuple_keys": {(1, 2): "x"}, "nested": {"a": [1, Weird()]},
                                  "error": ValueError("bad")})
    (doc,) = out.docs()
    assert doc["obj"] == "weird!" and doc["broken"] == "<unprintable Broken>"
    assert doc["raw"] == str(b"\x00\xff") and doc["nan"] == "nan" and doc["cyclic"] == "[[...]]"
    assert doc["tuple_keys"] == "{(1, 2): 'x'}" and doc["nested"] == {"a": [1, "weird!"]}
    assert doc["error"] == "bad"


def test_bad_format_args_do_not_lose_the_line() -> None:
    # Built by hand: pytest's own capture handler would raise on this record.
    record = logging.makeLogRecord({"msg": "bad args %d", "args": ("not-a-number",), "levelname": "INFO"})
    doc = json.loads(JsonFormatter(service_name="s", environment="e").format(record))
    assert doc["message"].startswith("bad args %d (unformattable args:")


def test_caller_fields_cannot_clobber_formatter_keys(capture: tuple[logging.Logger, _Capture]) -> None:
    log, out = capture
    log.info("x", extra={"level": "fake", "ts": 1, "service_name": "other"})
    (doc,) = out.docs()
    assert doc["level"] == "info" and doc["service_name"] == "collector"
    assert (doc["extra_level"], doc["extra_ts"], doc["extra_service_name"]) == ("fake", 1, "other")


# ---- redaction ------------------------------------------------------------------------


def test_secrets_redacted_everywhere(capture: tuple[logging.Logger, _Capture]) -> None:
    log, out = capture
    try:
        raise PermissionError(f"bad key {SECRET}")
    except PermissionError:
        log.exception("auth with %s failed", SECRET, extra={"error": f"key={SECRET}",
                                                           "ctx": {"headers": {"X-Key": SECRET}}})
    log.info("connecting to https://alice:hunter22@db.example.com:5432/x and redis://:pw0rd@cache:6379 "
             "and http://plain.example.com/a@b")
    log.info("short secrets stay: abc")
    text = "\n".join(out.lines)
    assert SECRET not in text and "hunter22" not in text and "pw0rd" not in text
    redacted, url, short = out.docs()
    assert redacted["message"] == "auth with *** failed" and redacted["error"] == "key=***"
    assert redacted["ctx"] == {"headers": {"X-Key": "***"}}
    assert "PermissionError: bad key ***" in redacted["exc"]
    assert "https://***:***@db.example.com:5432/x" in url["message"]
    assert "redis://***:***@cache:6379" in url["message"] and "http://plain.example.com/a@b" in url["message"]
    assert short["message"] == "short secrets stay: abc"


def test_secret_with_json_special_characters() -> None:
    secret = 'pa"ss\\wörd'
    formatter = JsonFormatter(service_name="s", environment="e", redactor=Redactor([secret, "", None]))
    record = logging.makeLogRecord({"msg": f"token {secret}", "levelname": "INFO", "levelno": 20})
    line = formatter.format(record)
    assert json.loads(line)["message"] == "token ***"


# ---- real processes through the queue ---------------------------------------------------


def _worker_main(q: Any) -> None:
    """Runs in a spawned child: configure like a real worker, then log."""
    configure_worker_logging(q, exchange="binance", mode="live", level="INFO")
    log = logging.getLogger("worker.binance")
    root = logging.getLogger()
    log.info("child ready", extra={"event": "probe", "handlers": [type(h).__name__ for h in root.handlers]})
    log.info("wrote %d rows using %s", 5, SECRET, extra={"event": "sink_write_ok", "symbol": "BTC/USDT",
                                                        "timeframe": "1m", "rows": 5, "lock": threading.Lock()})
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed", extra={"event": "lookup_failed", "error": KeyError("missing")})
    logging.getLogger("urllib3.connectionpool").info("noise that must not appear")
    logging.getLogger("ccxt.base").warning("ccxt warning passes", extra={"event": "ccxt_warning"})
    log.debug("below level")


def _run_child(q: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_worker_main, args=(q,))
    child.start()
    child.join(60)
    assert child.exitcode == 0


def test_spawned_worker_records_arrive_as_json() -> None:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    stream = io.StringIO()
    listener = start_log_listener(q, service_name="collector", environment="test", loki=None,
                                  secrets=[SECRET], stream=stream)
    _run_child(q)
    listener.stop()
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [d["event"] for d in docs] == ["probe", "sink_write_ok", "lookup_failed", "ccxt_warning"]
    assert all(d["exchange"] == "binance" and d["mode"] == "live" for d in docs)
    assert all(CORE_KEYS <= d.keys() and TS_RE.match(d["ts"]) for d in docs)
    probe, wrote, failed, _ = docs
    assert probe["handlers"] == ["PicklingQueueHandler"]
    assert wrote["message"] == "wrote 5 rows using ***" and wrote["rows"] == 5
    assert (wrote["symbol"], wrote["timeframe"]) == ("BTC/USDT", "1m")
    assert wrote["lock"].startswith("<unlocked _thread.lock")
    assert "KeyError: 'missing'" in failed["exc"] and failed["message"] == "lookup failed"
    assert failed["error"] == "'missing'"
    assert listener.stats() == {"sent": 0, "dropped": 0, "failed_batches": 0, "retries": 0, "pending": 0}


def test_worker_and_supervisor_share_one_path_to_stdout_and_loki(restore_root: None) -> None:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    stream = io.StringIO()
    with LokiFake(username="grafana", password="loki-pass") as fake:
        config = LokiConfig(fake.url, "grafana", "loki-pass", batch_size=100, flush_interval=0.05)
        listener = start_log_listener(q, service_name="collector", environment="test", loki=config,
                                      secrets=[SECRET, "loki-pass"], stream=stream)
        configure_supervisor_logging(q, "INFO")
        sup = logging.getLogger("supervisor.main")
        sup.info("starting worker", extra={"event": "worker_start", "exchange": "binance"})
        _run_child(q)
        sup.info("worker exited", extra={"event": "worker_exit"})
        listener.stop(timeout=3.0)
        entries = fake.entries()
    stdout_lines = stream.getvalue().splitlines()
    assert len(stdout_lines) == 6 and sorted(line for _, _, line in entries) == sorted(stdout_lines)
    events = [json.loads(line)["event"] for line in stdout_lines]
    assert events[0] == "worker_start" and events[-1] == "worker_exit"
    by_event = {json.loads(line)["event"]: labels for labels, _, line in entries}
    assert by_event["worker_start"]["exchange"] == "supervisor"  # the supervisor's own record
    assert by_event["sink_write_ok"] == {"service_name": "collector", "environment": "test",
                                         "exchange": "binance", "level": "info"}
    assert by_event["ccxt_warning"]["level"] == "warning"
    assert all(SECRET not in line for _, _, line in entries)
    assert listener.stats()["sent"] == 6


def test_listener_survives_a_record_that_cannot_be_unpickled() -> None:
    class BadQueue(queue.Queue):  # type: ignore[type-arg]
        def get(self, block: bool = True, timeout: Any = None) -> Any:
            item = super().get(block, timeout)
            if item == "poison":
                raise TypeError("__init__() missing 1 required positional argument")
            return item

    q = BadQueue()
    stream = io.StringIO()
    listener = start_log_listener(q, service_name="s", environment="e", loki=None, secrets=[], stream=stream)
    q.put("poison")
    q.put(logging.makeLogRecord({"msg": "after", "levelname": "INFO", "levelno": logging.INFO}))
    listener.stop()
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [d["event"] for d in docs] == ["log_record_undecodable", "log"]
    assert docs[1]["message"] == "after"
