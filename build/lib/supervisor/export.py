"""``--mode export``: one child process reads the store and writes the files.

The supervisor never holds a store client, so the reading and writing happen in a child
started by module path, like a worker; its log lines travel through a channel as a worker's do.
"""

from __future__ import annotations

import logging
import queue
import signal
from typing import Any

from core import exit_codes
from core.entrypoints import EXPORT_MAIN, run_entrypoint
from core.exports import ExportRequest
from supervisor.channels import WorkerChannel

log = logging.getLogger(__name__)


def run_export(ctx: Any, request: ExportRequest, log_queue: queue.Queue) -> int:
    """0 when the files are written; BOOT_FAILURE when the store could not be read."""
    channel = WorkerChannel(ctx, log_queue, queue.Queue())
    process = ctx.Process(target=run_entrypoint, name="export", args=(EXPORT_MAIN, request, channel.queue))
    process.start()
    stop_requested: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: stop_requested.append(signum))
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while process.is_alive():
            process.join(0.2)
            if stop_requested and process.is_alive():
                log.info("stop requested, ending the export", extra={"event": "shutdown_requested"})
                process.terminate()
                process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        channel.close()
    if stop_requested:
        return exit_codes.HISTORY_INCOMPLETE
    if process.exitcode != exit_codes.OK:
        log.error("the export failed (exit code %s)", process.exitcode,
                  extra={"event": "export_failed", "exit_code": process.exitcode})
        return exit_codes.BOOT_FAILURE
    return exit_codes.OK
