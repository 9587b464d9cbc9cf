"""``--mode probe`` end to end: the real CLI in a subprocess against the simulator's truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core import exit_codes
from core.timefmt import parse_iso_utc
from tests.e2e_support import e2e_config

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60_000


def run_probe(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor", "--mode", "probe", "--config", str(config), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def probe(tmp_path: Path, sim: Any, exchange: str, symbol: str = "BTC/USDT") -> dict:
    sim.set_rate_limit(exchange, enabled=False)
    config = e2e_config(tmp_path, sim, {exchange: [{"symbol": symbol, "timeframes": ["1m"]}]})
    # ccxt's own pacing (Kraken: 1 s a request) would make the bisection slow; the simulator is local.
    data = yaml.safe_load(config.read_text())
    data["exchanges"][exchange]["ccxt"]["rateLimit"] = 20
    config.write_text(yaml.safe_dump(data))
    done = run_probe(config, "--exchange", exchange)
    assert done.returncode == exit_codes.OK, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def minutes_ago(iso: str) -> float:
    return (time.time() * 1000 - parse_iso_utc(iso)) / MINUTE


def test_binance_full_pages_since_honoured_open_bar(tmp_path, sim):
    result = probe(tmp_path, sim, "binance")
    assert result["page_size"] == 1000
    assert result["since_honoured"] is True
    assert result["open_bar_included"] is True
    assert "1m" in result["timeframes"] and result["rate_limit_ms"] > 0


def test_kraken_serves_the_last_720_bars(tmp_path, sim):
    result = probe(tmp_path, sim, "kraken", "BTC/USD")
    assert result["since_honoured"] is False
    assert 715 <= minutes_ago(result["oldest_bar"]) <= 725


def test_hyperliquid_keeps_the_newest_5000_bars(tmp_path, sim):
    result = probe(tmp_path, sim, "hyperliquid", "BTC/USDC")
    assert 4990 <= minutes_ago(result["oldest_bar"]) <= 5005


def test_closed_port_exits_1(tmp_path, sim):
    config = e2e_config(tmp_path, sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]})
    config.write_text(config.read_text().replace(sim.base_url.rsplit(":", 1)[1].split("/")[0], "9"))
    done = run_probe(config, "--exchange", "binance")
    assert done.returncode == exit_codes.UNREACHABLE, done.stderr


def test_unknown_exchange_exits_2(tmp_path, sim):
    config = e2e_config(tmp_path, sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]})
    done = run_probe(config, "--exchange", "nosuchexchange")
    assert done.returncode == exit_codes.USAGE
    assert "nosuchexchange" in done.stderr
