"""The paths the service writes to, checked once before any process starts.

A read-only volume or a state directory that cannot be created would otherwise surface as
workers restarting in a loop, each with a store error. At boot it is a bad environment, said
once with the path and the reason (exit code 3). The check creates a missing directory (as
the store and the spool would) and creates and removes a probe file in it: ``os.access``
alone answers for the permission bits, which root ignores, while a probe meets the real
refusal (read-only file system, no permission, a file where a directory should be).
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config import AppConfig

PROBE_NAME = ".tda-write-probe"


def unusable_paths(config: AppConfig) -> list[tuple[str, str, str]]:
    """(config key, path, reason) for every path the service cannot write."""
    checks = [("settings.state_dir", Path(config.settings.state_dir), True)]
    if config.storage.backend == "sqlite":
        checks.append(("storage.sqlite.path", Path(config.storage.sqlite.path), False))
    problems = []
    for key, path, is_dir in checks:
        reason = directory_problem(path if is_dir else path.parent)
        if reason is None and not is_dir:
            reason = file_problem(path)
        if reason is not None:
            problems.append((key, str(path), reason))
    return problems


def directory_problem(directory: Path) -> str | None:
    """Why files cannot be created in ``directory`` (created if missing), or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the directory: {_reason(exc)}"
    if not directory.is_dir():
        return "not a directory"
    probe = directory / f"{PROBE_NAME}-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return f"cannot write in the directory: {_reason(exc)}"
    return None


def file_problem(path: Path) -> str | None:
    """Why an existing file cannot be opened for writing, or None (also when it is absent)."""
    if not path.exists():
        return None
    if path.is_dir():
        return "is a directory"
    try:
        with path.open("r+b"):
            pass
    except OSError as exc:
        return f"cannot open the file for writing: {_reason(exc)}"
    return None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
