"""One channel per worker process, carrying its log records and status reports.

A ``multiprocessing.Queue`` guards its pipe with a lock shared by every writer. A worker
killed with SIGKILL while holding it would leave every other worker blocked on its next log
line, so each worker process gets a queue of its own, used once: a relay thread moves log
records to the supervisor's log listener and status reports to the main loop, and the queue
is retired with its process.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from core.protocol import Envelope

log = logging.getLogger(__name__)


class WorkerChannel:
    def __init__(self, ctx: Any, log_queue: queue.Queue, report_queue: queue.Queue) -> None:
        self.queue = ctx.Queue()
        self._log_queue = log_queue
        self._report_queue = report_queue
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._relay, name="worker-channel", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        while not self._closed.is_set():
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:  # a torn message from a killed process: skip it
                log.warning("undecodable message from a worker", extra={"event": "channel_error"})
                continue
            self._dispatch(item)

    def _dispatch(self, item: Any) -> None:
        if isinstance(item, logging.LogRecord):
            self._log_queue.put(item)
        elif isinstance(item, Envelope):
            self._report_queue.put(item)

    def close(self) -> None:
        """Deliver what the exited process left in the pipe, then retire the queue."""
        self._closed.set()
        self._thread.join(timeout=1.0)
        try:
            while True:
                self._dispatch(self.queue.get(timeout=0.1))
        except Exception:  # Empty, or a torn message at the end of the pipe
            pass
        self.queue.close()
        self.queue.cancel_join_thread()
