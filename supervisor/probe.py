"""``--mode probe``: run the worker-side probe in a child process and relay its exit code.

The probe talks to ccxt, which the supervisor never imports; the child is started by module
path (``core.entrypoints``) like a worker, and prints its own result on the shared stdout.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

from core import exit_codes
from core.config import AppConfig
from core.entrypoints import PROBE_MAIN, run_entrypoint


def probe_params(config: AppConfig, exchange_id: str, symbols: list[str] | None,
                 timeframe: str | None) -> dict[str, Any]:
    """The probe's inputs as plain data; an exchange not in the config is probed with ccxt's defaults.
    The configured candle series (symbol, timeframe) are what it probes when no --symbol is named."""
    configured = config.exchanges.get(exchange_id)
    series = tuple((s.symbol, tf) for s in configured.symbols for tf in s.timeframes or ()) if configured else ()
    return {"exchange_id": exchange_id, "ccxt_settings": dict(configured.ccxt) if configured else {},
            "symbols": tuple(symbols or ()), "timeframe": timeframe, "configured_series": series,
            "as_json": not sys.stdout.isatty()}


def run_probe(params: dict[str, Any]) -> int:
    """The child's exit code is already the command's (OK, USAGE, or UNREACHABLE)."""
    sys.stdout.flush()
    process = multiprocessing.get_context("spawn").Process(target=run_entrypoint, name="probe",
                                                           args=(PROBE_MAIN, params))
    process.start()
    process.join()
    code = process.exitcode
    return code if code in (exit_codes.OK, exit_codes.USAGE) else exit_codes.UNREACHABLE
