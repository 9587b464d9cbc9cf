"""The store's preparation, once, in a child process before any worker starts.

A child, so that the supervisor itself never imports or holds a store client.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from core import exit_codes
from core.config import StorageConfig
from core.logsetup import configure_worker_logging
from worker.errors import CollectorError
from worker.sinks.factory import make_sink

log = logging.getLogger(__name__)


def prepare_store(storage: StorageConfig, channel: Any, level: str) -> None:
    """Create the tables and views; exit 0 when the store is ready, TEMPORARY_FAILURE if not."""
    configure_worker_logging(channel, exchange="supervisor", mode="preflight", level=level)
    sink = make_sink(storage)
    try:
        sink.ensure()
        code = exit_codes.OK
    except CollectorError as exc:
        log.error("the store cannot be initialised: %s", exc,
                  extra={"event": "sink_init_error", "error": str(exc)[:500]})
        code = exit_codes.TEMPORARY_FAILURE
    finally:
        sink.close()
    logging.shutdown()
    sys.exit(code)
