"""HISTORY progress on a terminal: a bar with rate and ETA; JSON progress lines elsewhere."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
from types import SimpleNamespace

from core.protocol import WorkerState
from core.telemetry import HistoryProgress
from supervisor.progress import HistoryProgressBar
from tests.e2e_support import ROOT, Collector, e2e_config, iso_arg, now_ms

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def worker(done: int, total: int = 1000, state: WorkerState = WorkerState.RUNNING) -> SimpleNamespace:
    return SimpleNamespace(state=state, telemetry=SimpleNamespace(history=HistoryProgress(total, done, 2, 0)))


def test_no_bar_when_stdout_is_not_a_terminal() -> None:
    assert HistoryProgressBar.on_terminal(io.StringIO(), None) is None


def test_the_bar_shows_share_rate_and_eta_and_log_lines_pass_above_it() -> None:
    screen = Terminal()
    handler = logging.StreamHandler(screen)
    bar = HistoryProgressBar.on_terminal(screen, handler)
    assert bar is not None
    bar.update([worker(0), worker(0)])
    time.sleep(0.6)
    bar.update([worker(250), worker(250)])
    handler.emit(logging.makeLogRecord({"msg": "a log line", "event": "history_series_done"}))
    progress = logging.makeLogRecord({"msg": "BTC/USDT 1m 25% done", "event": "history_progress"})
    assert not handler.filter(progress)           # the bar replaces the per-series progress lines
    time.sleep(0.6)
    bar.update([worker(1000, state=WorkerState.DONE), worker(600)])
    bar.close()
    text = ANSI.sub("", screen.getvalue())
    assert "a log line" in text
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(r"history:\s+80%.*1\.60k/2\.00k", last), last
    assert re.search(r"bars/s", last) and re.search(r"<\d\d:\d\d", last), last   # rate and ETA
    assert "series" in last


def test_a_history_run_on_a_terminal_draws_the_bar(sim, tmp_path) -> None:
    end = now_ms() // 60_000 * 60_000 - 3_600_000
    start = end - 3 * 24 * 3_600_000
    sim.set_latency(0.3, exchange="binance")
    config = e2e_config(tmp_path, sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]}]},
                        settings={"history_page_limit": 500, "health_port": 0, "max_concurrent_requests": 1})
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "--config", str(config), "--mode", "history",
                             "--start", iso_arg(start), "--end", iso_arg(end)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
                            stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:
                    break                                      # the child closed the terminal
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(30) == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    text = ANSI.sub("", output.decode(errors="replace"))
    assert re.search(r"history:\s+100%", text), text[-2000:]
    assert "bars/s" in text and "2/2 series" in text, text[-2000:]
    assert "history_progress" not in text                     # the bar replaces those lines


def test_the_json_progress_lines_stay_when_stdout_is_not_a_terminal(sim, tmp_path, collectors) -> None:
    end = now_ms() // 60_000 * 60_000 - 3_600_000
    start = end - 3 * 24 * 3_600_000
    sim.set_latency(0.5, exchange="binance")       # 15 pages, 7.5 s: progress lines come every 5 s
    config = e2e_config(tmp_path, sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]},
                        settings={"history_page_limit": 300, "health_port": 0, "max_concurrent_requests": 1})
    collector = Collector(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end))
    collectors.append(collector)
    assert collector.wait(90) == 0
    assert collector.events("history_progress")
    assert not any("bars/s" in str(line.get("message")) for line in collector.lines())
