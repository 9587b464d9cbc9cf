"""How a fake run as a script stops: Ctrl-C, ``kill -INT`` or ``kill -TERM``."""

from __future__ import annotations

import signal


def stop_on_interrupt_or_term() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in the main thread.

    A program started in the background by a non-interactive shell (or under nohup) inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own: without
    this, ``kill -INT`` would leave the fake running.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
