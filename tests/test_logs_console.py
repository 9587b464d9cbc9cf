"""Logs for people: readable lines on a terminal, JSON lines anywhere else, LOG_FORMAT overrides."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from core.logsetup import Redactor
from supervisor.logs import ConsoleFormatter, JsonFormatter, stdout_format
from tests.e2e_support import ROOT, write_config

SECRET = "sk-live-0123456789abcdef"


def record(msg: str, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("worker.live", logging.WARNING, __file__, 1, msg, None, None)
    rec.created = 1_700_000_000.123
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_console_line_has_time_level_source_event_message_and_the_series() -> None:
    formatter = ConsoleFormatter(JsonFormatter(service_name="s", environment="e"))
    line = formatter.format(record("fetch failed", event="fetch_error", exchange="binance", mode="live",
                                   symbol="BTC/USDT", timeframe="1m", retryable=True))
    assert line == ("22:13:20.123 WARNING  binance     fetch_error: fetch failed  [BTC/USDT 1m]  "
                    "retryable=true")


def test_console_line_is_redacted_like_the_json_line() -> None:
    formatter = ConsoleFormatter(JsonFormatter(service_name="s", environment="e", redactor=Redactor([SECRET])))
    line = formatter.format(record(f"key {SECRET} and https://user:pw@host/x", event="x"))
    assert SECRET not in line and "user:pw" not in line and "***" in line


def test_format_choice_follows_the_terminal_unless_log_format_says() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    assert stdout_format(None, Tty()) == "console"
    assert stdout_format(None, io.StringIO()) == "json"
    assert stdout_format("json", Tty()) == "json"
    assert stdout_format("console", io.StringIO()) == "console"
    with pytest.raises(ValueError):
        stdout_format("xml", io.StringIO())


def run_on_a_terminal(tmp_path, sim, env: dict[str, str], seconds: float = 20) -> list[str]:
    """The real CLI with its stdout on a pseudo-terminal; its lines until the first LIVE cycle."""
    config = write_config(tmp_path / "config.yaml", sim,
                          {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]},
                          settings={"health_port": 0})
    leader, follower = pty.openpty()
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "BIGQUERY_", "LOG_"))},
                "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "--config", str(config)], cwd=ROOT,
                            env=full_env, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    text, deadline = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and b"live_cycle_complete" not in text:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    text += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        proc.terminate()
        proc.wait(20)
        os.close(leader)
    return [line for line in text.decode(errors="replace").splitlines() if line.strip()]


def test_the_cli_prints_readable_lines_on_a_terminal(tmp_path, sim) -> None:
    lines = run_on_a_terminal(tmp_path, sim, {})
    cycle = [line for line in lines if "live_cycle_complete" in line]
    assert cycle, lines[-10:]
    assert not cycle[0].lstrip().startswith("{")
    assert " INFO " in cycle[0] and " binance " in cycle[0] and "live_cycle_complete: cycle done" in cycle[0]


def test_log_format_json_keeps_json_lines_on_a_terminal(tmp_path, sim) -> None:
    lines = run_on_a_terminal(tmp_path, sim, {"LOG_FORMAT": "json"})
    cycle = [json.loads(line) for line in lines if "live_cycle_complete" in line]
    assert cycle and cycle[0]["event"] == "live_cycle_complete" and cycle[0]["exchange"] == "binance"


def test_an_unknown_log_format_is_a_usage_error(tmp_path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("exchanges:\n  binance:\n    - symbol: BTC/USDT\n      timeframes: [1m]\n")
    result = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(config)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_FORMAT": "xml"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "LOG_FORMAT" in result.stderr and "Traceback" not in result.stderr
