"""What one full garbage collection costs a worker in unshared memory.

Workers are forked from a forkserver that has imported ccxt (supervisor.cli.worker_context).
Their pages are shared with it until written to. A full collection writes the GC header
of every object it visits, the inherited ones included, so the first one a worker runs
copies every page holding an inherited object. When that happens depends on allocation
(in the LIVE run a Kraken worker, which parses 720 bars a cycle, gets there in about two
minutes). This probe forces it, in a child made exactly like a worker.

It runs as ``python -m bench.memprobe`` in its own process: a forkserver child also
imports its parent's ``__main__``, and the bench's own imports would inflate the figures.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from supervisor.cli import worker_context


def _child(conn: Any, exchange_id: str) -> None:
    """Runs in the forked child: build the exchange as a worker does, then collect."""
    import ccxt.async_support as ccxt_async

    process = psutil.Process()
    started = process.memory_full_info().uss
    exchange = getattr(ccxt_async, exchange_id)()
    built = process.memory_full_info().uss
    gc.collect()
    collected = process.memory_full_info().uss
    conn.send((started, built, collected))
    del exchange


def uss_after_full_gc(exchange_id: str = "binance") -> tuple[int, int, int]:
    """(USS at fork, after building the ccxt exchange, after one gc.collect()) in bytes."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "bench.memprobe", exchange_id], cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return tuple(json.loads(out))  # type: ignore[return-value]


def _probe(exchange_id: str) -> tuple[int, int, int]:
    ctx = worker_context()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(sender, exchange_id), name="bench-gc-probe")
    process.start()
    try:
        return receiver.recv()
    finally:
        process.join(30)


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1] if len(sys.argv) > 1 else "binance")))
