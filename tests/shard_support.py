"""Configs with universes and shards for the end-to-end tests, and the simulator's view of
which process fetched which series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.e2e_support import free_port

# Kraken's real pace (1,000 ms x 1.2 a request) would make these tests minutes long.
FAST = {"kraken": {"rateLimit": 50}}


def universe_config(tmp_path: Path, sim: Any, bodies: dict[str, dict], *, settings: dict | None = None,
                    storage: dict | None = None, name: str = "c.yaml", client: str | None = None,
                    ccxt: dict[str, dict] | None = None) -> Path:
    """A config whose exchanges point at the simulator; ``client`` tags every request (X-Client)."""
    tag = {"headers": {"X-Client": client}} if client else {}
    config = {
        "settings": {"update_interval_seconds": 1, "health_port": free_port(), "environment": "test",
                     "state_dir": str(tmp_path / "state"), **(settings or {})},
        "storage": storage or {"backend": "sqlite", "sqlite": {"path": str(tmp_path / "md.sqlite")}},
        "exchanges": {ex: {"ccxt": {**sim.ccxt_config(ex), **FAST.get(ex, {}), **tag, **(ccxt or {}).get(ex, {})},
                           **body} for ex, body in bodies.items()},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def plan_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def fetchers(sim: Any) -> dict[tuple[str, str, str], set[str]]:
    """Per candle series as the exchange names it, the X-Client tags of the processes that asked."""
    seen: dict[tuple[str, str, str], set[str]] = {}
    for record in sim.requests:
        key = native_series(record)
        if key is not None:
            seen.setdefault(key, set()).add(record.client or "?")
    return seen


def native_series(record: Any) -> tuple[str, str, str] | None:
    """(exchange, native market id, interval) of a candle request, or None for other requests."""
    query = record.query if hasattr(record, "query") else record["query"]
    exchange = record.exchange if hasattr(record, "exchange") else record["exchange"]
    endpoint = record.endpoint if hasattr(record, "endpoint") else record["endpoint"]
    if endpoint not in ("klines", "uiKlines", "market/candles", "market/history-candles", "OHLC"):
        return None
    market = query.get("symbol") or query.get("instId") or query.get("pair")
    interval = query.get("interval") or query.get("bar")
    return exchange, market, interval


