"""The worker-side functions the supervisor starts, named by module path only.

The supervisor must not import the worker package (ccxt, store clients): a child process
imports it by name when it starts, so the layers stay apart and the parent stays small.
"""

from __future__ import annotations

import importlib
from typing import Any

WORKER_MAIN = "worker.process:worker_main"        # (spec, channel)
PREPARE_STORE = "worker.preflight:prepare_store"  # (storage, channel, level)
WORKER_PRELOAD = "worker.preload"                 # imported once by the forkserver
EXPORT_MAIN = "worker.export:export_main"         # (request, channel)
PROBE_MAIN = "worker.probe:probe_main"            # (request)


def run_entrypoint(path: str, *args: Any) -> None:
    """``multiprocessing`` target: import ``module:function`` in the child and call it."""
    module, _, name = path.partition(":")
    getattr(importlib.import_module(module), name)(*args)
