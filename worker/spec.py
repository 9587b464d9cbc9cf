"""What the supervisor hands a worker process, and the process's entry point.

Kept free of heavy imports: the supervisor imports this module, and the worker only pays
for ccxt and the store's client once it runs in its own process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from supervisor.config import ExchangeConfig, Settings, StorageConfig


@dataclass(frozen=True)
class WorkerSpec:
    exchange_id: str
    exchange: ExchangeConfig
    settings: Settings
    storage: StorageConfig
    mode: str                                   # "live", "history" or "audit"
    start_ms: int | None = None                 # HISTORY / AUDIT range [start, end)
    end_ms: int | None = None
    # HISTORY: per series (exchange, symbol, timeframe), where a previous attempt stood.
    resume_from: dict[tuple[str, str, str], int] = field(default_factory=dict)
    repair: bool = False                        # AUDIT: fill the gaps the exchange can serve


def run_worker(spec: WorkerSpec, log_queue: Any, status_queue: Any) -> None:
    """``multiprocessing`` target; imports the worker's machinery inside the child only."""
    from worker.process import worker_main

    worker_main(spec, log_queue, status_queue)


def run_preflight(storage: StorageConfig, channel: Any, level: str) -> None:
    """``multiprocessing`` target: prepare the store once before any worker starts.

    Runs in a child so that the supervisor itself never imports or holds a store client.
    Exits 0 when the store is ready, ``exit_codes.TEMPORARY_FAILURE`` otherwise.
    """
    import logging
    import sys

    from supervisor.logs import configure_worker_logging
    from worker import exit_codes
    from worker.errors import CollectorError
    from worker.sinks.factory import make_sink

    configure_worker_logging(channel, exchange="supervisor", mode="preflight", level=level)
    sink = make_sink(storage)
    try:
        sink.ensure()
        code = exit_codes.OK
    except CollectorError as exc:
        logging.getLogger("worker.preflight").error(
            "the store cannot be initialised: %s", exc,
            extra={"event": "sink_init_error", "error": str(exc)[:500]})
        code = exit_codes.TEMPORARY_FAILURE
    finally:
        sink.close()
    logging.shutdown()
    sys.exit(code)
