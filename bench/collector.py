"""``python -m supervisor`` as a child process of the bench: its config, its JSON log lines,
its health endpoint, and a kill that leaves no worker behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def work_directory(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh directory for a bench run's configs, stores and state: removed afterwards, or
    kept and named so that its stores and logs can be read."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            print(f"work directory: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, ccxt: dict[str, dict], exchanges: dict[str, list[dict]], *,
                 settings: dict | None = None) -> Path:
    """A config for the exchanges in ``exchanges``, each with its ccxt settings from ``ccxt``
    (the simulator's), storing into SQLite next to the config file."""
    config = {
        "settings": {"health_port": free_port(), "environment": "bench",
                     "state_dir": str(path.parent / "state"), **(settings or {})},
        "storage": {"backend": "sqlite", "sqlite": {"path": str(path.parent / "md.sqlite")}},
        "exchanges": {name: {"ccxt": ccxt[name], "symbols": symbols} for name, symbols in exchanges.items()},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Collector:
    """``python -m supervisor --config config`` in a subprocess; its stdout (JSON lines) goes to
    a file next to the config. Log shipping and BigQuery stay off unless ``env`` turns them on."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> None:
        self.config = config
        self.health_port = yaml.safe_load(config.read_text())["settings"]["health_port"]
        self.stdout_path = config.parent / f"stdout-{time.monotonic_ns()}.log"
        self._stdout = self.stdout_path.open("w")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LOKI_", "BIGQUERY_"))}
        full_env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
        argv = command or [sys.executable, "-m", "supervisor"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*argv, "--config", str(config), *args], cwd=ROOT, env=full_env,
                                     stdout=self._stdout, stderr=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[dict[str, Any]]:
        """Every stdout line so far, parsed; a line that is not JSON becomes ``_unparsable``."""
        self._stdout.flush()
        out = []
        for raw in self.stdout_path.read_text().splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                out.append({"event": "_unparsable", "message": raw})
        return out

    def events(self, name: str, **match: Any) -> list[dict[str, Any]]:
        """The log lines of event ``name`` whose fields equal ``match``, oldest first."""
        return [line for line in self.lines() if line.get("event") == name
                and all(line.get(k) == v for k, v in match.items())]

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """(status, body) of ``/healthz``; None while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return None

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """The first true value of ``predicate``; fails if the collector exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited ({self.proc.returncode}) while waiting for {what}: "
                                     f"{self.proc.stderr.read()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        """Until every worker has had a successful cycle; the health body."""
        def ok() -> dict[str, Any] | None:
            answer = self.health()
            return answer[1] if answer and answer[0] == 200 and all(
                w["last_success"] for w in answer[1]["workers"].values()) else None
        return self.wait_for(ok, timeout, "all workers healthy")

    def worker_pids(self) -> dict[str, int]:
        answer = self.health()
        return {name: w["pid"] for name, w in answer[1]["workers"].items()} if answer else {}

    def terminate(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._stdout.flush()

    def kill(self) -> None:
        """SIGKILL the supervisor and every process it started (what a container kill does)."""
        if self.proc.poll() is None:
            try:
                tree = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            self.proc.kill()
            self.proc.wait(10)
            for child in tree:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(tree, timeout=5)
        self._stdout.close()

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else ""
