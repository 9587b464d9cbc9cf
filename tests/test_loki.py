"""LokiHandler against the loopback fake, over real HTTP."""

from __future__ import annotations

import email.utils
import io
import json
import logging
import queue
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from core.logsetup import PicklingQueueHandler, Redactor
from core.retry import retry_after_seconds
from supervisor.logs import JsonFormatter, loki_record_labels, start_log_listener
from supervisor.loki import LokiConfig, LokiHandler, build_payload
from tests.fakes.loki_fake import LokiFake

LABEL_KEYS = {"service_name", "environment", "exchange", "level"}
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}  # keep retry loops quick


@pytest.fixture
def fake() -> Iterator[LokiFake]:
    with LokiFake(username="grafana", password="s3cret-pass") as server:
        yield server


@pytest.fixture
def make_handler(fake: LokiFake) -> Iterator[Callable[..., LokiHandler]]:
    """Build handlers wired like start_log_listener does; close leftovers afterwards."""
    made: list[LokiHandler] = []

    def factory(*, auth: bool = True, **overrides: Any) -> LokiHandler:
        tuning = {k: overrides.pop(k) for k in ("backoff_base", "backoff_max") if k in overrides}
        config = LokiConfig(fake.url, "grafana" if auth else None, "s3cret-pass" if auth else None,
                            **{"batch_size": 50, "flush_interval": 0.05, **overrides})
        handler = LokiHandler(config, labels={"service_name": "collector", "environment": "test"},
                              record_labels=loki_record_labels, **{**FAST, **tuning})
        handler.setFormatter(JsonFormatter(service_name="collector", environment="test",
                                           redactor=Redactor(["s3cret-pass"])))
        made.append(handler)
        return handler

    yield factory
    for handler in made:
        handler.close(0.2)


def record(i: int, *, exchange: str = "binance", level: int = logging.INFO, worker: bool = True) -> logging.LogRecord:
    fields = {"name": "t", "msg": "line %d", "args": (i,), "levelno": level,
              "levelname": logging.getLevelName(level), "exchange": exchange, "mode": "live", "i": i}
    if worker:
        fields["_log_origin"] = "worker"
    return logging.makeLogRecord(fields)


def delivered(fake: LokiFake) -> list[int]:
    return [json.loads(line)["i"] for _, _, line in fake.entries()]


def timed_emits(handler: logging.Handler, n: int) -> float:
    """Average seconds per emit for n records."""
    start = time.perf_counter()
    for i in range(n):
        handler.emit(record(i))
    return (time.perf_counter() - start) / n


# ---- happy path -------------------------------------------------------------------


def test_batched_pushes_with_exactly_four_labels(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler()
    records = [record(i, exchange=("binance", "kraken")[i % 2], level=(logging.INFO, logging.ERROR)[i % 3 == 0])
               for i in range(200)]
    records.append(record(200, worker=False))  # a supervisor record that mentions an exchange
    for rec in records:
        handler.emit(rec)
    assert handler.flush(3)
    entries = fake.entries()
    assert sorted(delivered(fake)) == list(range(201))
    assert 4 <= fake.pushes < 50
    assert all(set(labels) == LABEL_KEYS for labels, _, _ in entries)
    assert {labels["exchange"] for labels, _, _ in entries} == {"binance", "kraken", "supervisor"}
    assert {labels["level"] for labels, _, _ in entries} == {"info", "error"}
    by_i = {json.loads(line)["i"]: (ts, line) for _, ts, line in entries}
    assert by_i[7] == (int(records[7].created * 1e9), handler.format(records[7]))  # same line as stdout
    assert handler.stats() == {"sent": 201, "dropped": 0, "failed_batches": 0, "retries": 0, "pending": 0}


def test_basic_auth_and_gzip_are_sent(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler()
    handler.emit(record(1))
    assert handler.flush(3)
    (request,) = fake.requests
    assert request.outcome == "204"
    assert request.headers["authorization"].startswith("Basic ")
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"


def test_plain_json_when_gzip_is_off(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler(gzip=False)
    handler.emit(record(1))
    assert handler.flush(3) and delivered(fake) == [1]
    assert "content-encoding" not in fake.requests[0].headers


def test_secrets_never_reach_loki(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler()
    handler.emit(logging.makeLogRecord({"msg": "pw is s3cret-pass at http://u:s3cret-pass@host/", "levelno": 20,
                                        "levelname": "INFO"}))
    assert handler.flush(3)
    ((_, _, line),) = fake.entries()
    assert "s3cret-pass" not in line and "***" in line


# ---- failures -----------------------------------------------------------------------


def test_wrong_credentials_drop_the_batch(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler(auth=False)
    for i in range(10):
        handler.emit(record(i))
    handler.flush(3)
    assert [r.outcome for r in fake.requests] == ["401"]
    assert handler.stats() == {"sent": 0, "dropped": 10, "failed_batches": 1, "retries": 0, "pending": 0}


def test_400_drops_the_batch_and_later_batches_still_flow(fake: LokiFake,
                                                          make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler()
    fake.set_fault("http_400", count=1)
    for i in range(10):
        handler.emit(record(i))
    handler.flush(3)
    assert handler.stats() == {"sent": 0, "dropped": 10, "failed_batches": 1, "retries": 0, "pending": 0}
    assert "HTTP 400" in (handler.last_error or "")
    for i in range(10, 15):
        handler.emit(record(i))
    assert handler.flush(3)
    assert delivered(fake) == [10, 11, 12, 13, 14]


def test_429_honours_retry_after_then_delivers_everything(fake: LokiFake,
                                                          make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler()
    fake.set_fault("http_429", count=1, retry_after=1)
    for i in range(30):
        handler.emit(record(i))
    assert handler.flush(5)
    first, second = fake.requests[:2]
    assert first.outcome == "429" and second.outcome == "204"
    assert second.at - first.at >= 0.9  # Retry-After, not the 10 ms backoff
    assert sorted(delivered(fake)) == list(range(30))
    assert handler.stats()["retries"] == 1 and handler.stats()["sent"] == 30


@pytest.mark.parametrize("mode", ["http_500", "http_503"])
def test_5xx_is_retried_with_backoff(fake: LokiFake, make_handler: Callable[..., LokiHandler], mode: str) -> None:
    handler = make_handler()
    fake.set_fault(mode, count=2)
    for i in range(5):
        handler.emit(record(i))
    assert handler.flush(3)
    assert [r.outcome for r in fake.requests] == [mode[5:], mode[5:], "204"]
    assert handler.stats() == {"sent": 5, "dropped": 0, "failed_batches": 0, "retries": 2, "pending": 0}


def test_retries_are_bounded(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler(max_retries=2)
    fake.set_fault("dead")
    for i in range(5):
        handler.emit(record(i))
    handler.flush(3)
    assert len(fake.requests) == 3
    assert handler.stats() == {"sent": 0, "dropped": 5, "failed_batches": 1, "retries": 2, "pending": 0}
    assert "Connection" in (handler.last_error or "")


def test_dead_loki_emit_stays_fast_bounded_and_drops_oldest(fake: LokiFake,
                                                            make_handler: Callable[..., LokiHandler]) -> None:
    # No timer flush: the only batch taken during the outage is the first full one.
    handler = make_handler(batch_size=100, max_buffer=1000, flush_interval=10.0, max_retries=10_000)
    fake.set_fault("dead")
    assert timed_emits(handler, 10_000) < 0.0005
    stats = handler.stats()
    assert stats["pending"] == 1000 + 100 and stats["dropped"] == 8900 and stats["sent"] == 0
    assert stats["retries"] >= 1 and all(r.outcome == "reset" for r in fake.requests)
    fake.clear_fault()
    assert handler.flush(5)
    # The in-flight first batch, then the newest 1000: everything in between was evicted.
    assert sorted(delivered(fake)) == list(range(100)) + list(range(9000, 10_000))
    assert handler.stats()["sent"] + handler.stats()["dropped"] == 10_000


class TimedStream(io.StringIO):
    """Remembers when each line was written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[float] = []

    def write(self, text: str) -> int:
        self.written.extend(time.monotonic() for _ in range(text.count("\n")))
        return super().write(text)


def test_slow_loki_does_not_delay_stdout(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    fake.set_fault("slow", delay=10.0)
    handler = make_handler(max_buffer=1000, batch_size=100, timeout=1.0)
    assert timed_emits(handler, 10_000) < 0.0005
    assert handler.stats()["pending"] <= 1100

    q: queue.Queue[Any] = queue.Queue()
    stream = TimedStream()
    config = LokiConfig(fake.url, "grafana", "s3cret-pass", batch_size=100, flush_interval=0.05, timeout=1.0,
                        max_buffer=1000)
    listener = start_log_listener(q, service_name="collector", environment="test", loki=config,
                                  secrets=[], stream=stream)
    producer = logging.getLogger("tests.loki.slow")
    producer.propagate = False
    producer.setLevel(logging.INFO)
    producer.addHandler(PicklingQueueHandler(q))
    try:
        start = time.monotonic()
        for i in range(10_000):
            producer.info("tick %d", i, extra={"event": "tick"})
        while len(stream.written) < 10_000 and time.monotonic() - start < 5:
            time.sleep(0.01)
        assert len(stream.written) == 10_000
        assert stream.written[-1] - start < 3.0  # Loki hangs for 10 s per request
        assert fake.pushes == 0 and any(r.outcome == "slow" for r in fake.requests)
        stopped = time.monotonic()
        listener.stop(timeout=1.0)
        assert time.monotonic() - stopped < 2.5
    finally:
        producer.handlers.clear()
    stats = listener.stats()
    assert stats["sent"] == 0 and stats["dropped"] >= 10_000 - 1100


# ---- shutdown -----------------------------------------------------------------------


def test_close_flushes_the_buffer(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler(batch_size=1000, flush_interval=10.0)
    for i in range(50):
        handler.emit(record(i))
    assert fake.pushes == 0
    start = time.monotonic()
    handler.close(2.0)
    assert time.monotonic() - start < 1.0
    assert sorted(delivered(fake)) == list(range(50)) and fake.pushes == 1


def test_close_is_bounded_when_loki_hangs(fake: LokiFake, make_handler: Callable[..., LokiHandler]) -> None:
    fake.set_fault("slow", delay=10.0)
    handler = make_handler(batch_size=1000, flush_interval=10.0)
    for i in range(50):
        handler.emit(record(i))
    start = time.monotonic()
    handler.close(0.5)
    assert time.monotonic() - start < 1.0
    assert handler.stats()["sent"] == 0 and handler.stats()["pending"] == 50 - handler.stats()["dropped"]
    handler.emit(record(99))  # after close: counted, not buffered, no exception
    assert handler.flush(0.1) is not None


def test_emit_never_raises(make_handler: Callable[..., LokiHandler]) -> None:
    class Exploding(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RuntimeError("boom")

    handler = make_handler(flush_interval=10.0)
    handler.setFormatter(Exploding())
    handler.emit(record(1))
    assert handler.stats()["dropped"] == 1 and handler.stats()["pending"] == 0


# ---- pieces -----------------------------------------------------------------------------


def test_payload_groups_by_labels_and_sorts_by_time() -> None:
    a, b = (("level", "info"),), (("level", "error"),)
    payload = build_payload([(30, a, "a3"), (10, a, "a1"), (20, b, "b2"), (20, a, "a2")])
    assert payload == {"streams": [
        {"stream": {"level": "info"}, "values": [["10", "a1"], ["20", "a2"], ["30", "a3"]]},
        {"stream": {"level": "error"}, "values": [["20", "b2"]]},
    ]}


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_seconds(later) or 0) <= 31


def test_config_from_env() -> None:
    assert LokiConfig.from_env({}) is None and LokiConfig.from_env({"LOKI_URL": "  "}) is None
    config = LokiConfig.from_env({"LOKI_URL": "https://logs.example.net", "LOKI_USERNAME": "123",
                                  "LOKI_PASSWORD": "glc_token"})
    assert config is not None
    assert config.url == "https://logs.example.net/loki/api/v1/push"
    assert config.auth == ("123", "glc_token") and "glc_token" not in repr(config)
    assert (config.batch_size, config.flush_interval, config.timeout, config.max_buffer, config.max_retries) == (
        500, 1.0, 5.0, 10000, None)
    bare = LokiConfig.from_env({"LOKI_URL": "http://127.0.0.1:3100/loki/api/v1/push"})
    assert bare is not None and bare.auth is None and bare.url.endswith(":3100/loki/api/v1/push")


def test_sender_thread_is_a_daemon(make_handler: Callable[..., LokiHandler]) -> None:
    handler = make_handler()
    assert any(t.name == "loki-sender" and t.daemon for t in threading.enumerate())
    handler.close(0.2)
