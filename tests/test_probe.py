"""``--mode probe`` end to end: the real CLI in a subprocess against one simulator, and what it
reports compared EXACTLY with what the simulator served.

One probe per dialect, run once per module (the simulator is shared; each probe's requests are
kept apart). The expected values come from the simulator itself: the page-size request replayed
through the dialect at the instant it was answered, and the oldest bar served at the instant of
the probe's last candle request (a window of the newest bars moves with the clock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core import exit_codes
from core.timefmt import iso_utc
from simulator import ExchangeSimulator, served_bar
from simulator.dialects import DIALECTS, Request
from simulator.dialects.gate import Gate
from simulator.dialects.hyperliquid import Hyperliquid
from simulator.dialects.kraken import Kraken
from simulator.markets import market
from tests.e2e_support import PAGE_ROWS, e2e_config

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60_000

def run_probe(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor", "--mode", "probe", "--config", str(config), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def probe_config(tmp_path: Path, sim: Any, exchange: str, symbol: str) -> Path:
    sim.set_rate_limit(exchange, enabled=False)
    config = e2e_config(tmp_path, sim, {exchange: [{"symbol": symbol, "timeframes": ["1m"]}]})
    # ccxt's own pacing (Kraken: 1 s a request) would make the bisection slow; the simulator is local.
    data = yaml.safe_load(config.read_text())
    data["exchanges"][exchange]["ccxt"]["rateLimit"] = 20
    config.write_text(yaml.safe_dump(data))
    return config


def probe(tmp_path: Path, sim: Any, exchange: str, symbol: str = "BTC/USDT") -> dict:
    done = run_probe(probe_config(tmp_path, sim, exchange, symbol), "--exchange", exchange)
    assert done.returncode == exit_codes.OK, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def shared_sim():
    simulator = ExchangeSimulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def probed(shared_sim, tmp_path_factory):
    """(result, candle requests) of one probe per (exchange, symbol), each run once."""
    runs: dict[tuple[str, str], tuple[dict, list]] = {}

    def run(exchange: str, symbol: str) -> tuple[dict, list]:
        if (exchange, symbol) not in runs:
            shared_sim.clear_requests()
            result = probe(tmp_path_factory.mktemp(exchange), shared_sim, exchange, symbol)
            candles = DIALECTS[exchange].candle_endpoints
            runs[exchange, symbol] = result, [r for r in shared_sim.requests
                                              if r.exchange == exchange and r.endpoint in candles]
        return runs[exchange, symbol]
    return run


def first_served(exchange: str, symbol: str, start_ms: int, now_ms: int) -> int:
    """The first bar served at or after ``start_ms`` (minutes without trades have none)."""
    ts = start_ms
    while served_bar(exchange, symbol, "1m", ts, now_ms) is None:
        ts += MINUTE
    return ts


def bucket(ms: int) -> int:
    return ms // MINUTE * MINUTE


def served_in_window(exchange: str, symbol: str, window: int, now_ms: int) -> int:
    """Bars served by an exchange that keeps the newest ``window`` bars, at ``now_ms``."""
    current = bucket(now_ms)
    return sum(served_bar(exchange, symbol, "1m", ts, now_ms) is not None
               for ts in range(current - (window - 1) * MINUTE, current + MINUTE, MINUTE))


def replayed_rows(exchange: str, record: Any) -> int:
    """Rows of a served page, replayed through the dialect at the instant it was answered."""
    reply = DIALECTS[exchange]().handle(Request(record.endpoint, dict(record.query), int(record.time * 1000)))
    return len(PAGE_ROWS[exchange](reply.body))


def check_common(exchange: str, symbol: str, result: dict, candles: list) -> int:
    """Open bar, request count and page size; returns the instant of the last candle request."""
    page_request, newest_request, last = candles[0], candles[2], candles[-1]
    newest_ms = int(newest_request.time * 1000)
    assert result["open_bar_included"] is (served_bar(exchange, symbol, "1m", bucket(newest_ms), newest_ms)
                                           is not None)
    assert result["requests"] == len(candles) <= 3 + 20 + 2
    assert "1m" in result["timeframes"] and result["rate_limit_ms"] == 20
    if exchange in PAGE_ROWS:
        assert result["page_size"] == replayed_rows(exchange, page_request)
    return int(last.time * 1000)


# (exchange, symbol, bars a page request asks for). Binance and Bitget serve that many bars from
# ``since``; OKX, Bybit, KuCoin and Coinbase serve the window of that many minutes from it, less
# the minutes without a trade (a 15-minute quiet block costs a window 15 bars).
LISTING_BOUND = [("binance", "BTC/USDT", 1000), ("binanceusdm", "SOL/USDT:USDT", 1000),
                 ("okx", "BTC/USDT", 300), ("bitget", "BTC/USDT", 200), ("bybit", "BTC/USDT", 1000),
                 ("bybit", "BTC/USDT:USDT", 1000), ("kucoin", "BTC/USDT", 1500), ("coinbase", "BTC/USD", 300)]


@pytest.mark.parametrize(("exchange", "symbol", "page"), LISTING_BOUND)
def test_since_honoured_and_the_oldest_bar_is_the_first_after_the_listing(probed, exchange, symbol, page):
    result, candles = probed(exchange, symbol)
    last_ms = check_common(exchange, symbol, result, candles)
    assert result["since_honoured"] is True
    assert page - 20 <= result["page_size"] <= page
    assert result["oldest_bar"] == iso_utc(first_served(exchange, symbol, market(exchange, symbol).listed_ms, last_ms))


@pytest.mark.parametrize("exchange", ["binanceusdm", "okx"])
def test_a_listing_ccxt_knows_is_where_the_search_starts(probed, exchange):
    """Binance's onboardDate and OKX's listTime reach ccxt's ``created``: one page from the
    listing finds the oldest bar, no bisection."""
    result, _ = probed(exchange, next(symbol for ex, symbol, _ in LISTING_BOUND if ex == exchange))
    assert result["requests"] == 4


def test_kraken_serves_the_last_720_bars_whatever_since_says(probed):
    result, candles = probed("kraken", "BTC/USD")
    last_ms = check_common("kraken", "BTC/USD", result, candles)
    assert result["since_honoured"] is False
    assert result["oldest_bar"] == iso_utc(first_served("kraken", "BTC/USD",
                                                        bucket(last_ms) - (Kraken.window - 1) * MINUTE, last_ms))


def test_hyperliquid_keeps_the_newest_5000_bars(probed):
    result, candles = probed("hyperliquid", "BTC/USDC")
    last_ms = check_common("hyperliquid", "BTC/USDC", result, candles)
    assert result["since_honoured"] is False
    assert result["page_size"] == served_in_window("hyperliquid", "BTC/USDC", Hyperliquid.window,
                                                   int(candles[0].time * 1000))
    assert result["oldest_bar"] == iso_utc(first_served("hyperliquid", "BTC/USDC",
                                                        bucket(last_ms) - (Hyperliquid.window - 1) * MINUTE,
                                                        last_ms))


def test_gate_refuses_a_since_10000_bars_back_and_the_bisection_finds_the_edge(probed):
    result, candles = probed("gate", "BTC/USDT")
    last_ms = check_common("gate", "BTC/USDT", result, candles)
    assert result["since_honoured"] is True
    assert result["oldest_bar"] == iso_utc(first_served("gate", "BTC/USDT",
                                                        bucket(last_ms) - (Gate.max_points_ago - 1) * MINUTE,
                                                        last_ms))


def test_closed_port_exits_1(tmp_path, shared_sim):
    config = e2e_config(tmp_path, shared_sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]})
    config.write_text(config.read_text().replace(shared_sim.base_url.rsplit(":", 1)[1].split("/")[0], "9"))
    done = run_probe(config, "--exchange", "binance")
    assert done.returncode == exit_codes.UNREACHABLE, done.stderr


def test_unknown_exchange_exits_2(tmp_path, shared_sim):
    config = e2e_config(tmp_path, shared_sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]})
    done = run_probe(config, "--exchange", "nosuchexchange")
    assert done.returncode == exit_codes.USAGE
    assert "nosuchexchange" in done.stderr


def run_on_terminal(config: Path, *args: str) -> tuple[int, str]:
    """The CLI with its stdout on a pseudo-terminal, as a person at a shell runs it."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "supervisor", "--mode", "probe", "--config", str(config),
                                *args], cwd=ROOT, stdout=slave, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:                      # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return process.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_terminal_shows_one_labelled_line_per_fact(tmp_path, shared_sim, probed):
    expected, _ = probed("binance", "BTC/USDT")
    code, text = run_on_terminal(probe_config(tmp_path, shared_sim, "binance", "BTC/USDT"), "--exchange", "binance")
    assert code == exit_codes.OK
    lines = text.strip().splitlines()
    assert lines == ["binance BTC/USDT 1m",
                     f"  timeframes         {', '.join(expected['timeframes'])}",
                     "  ccxt's pace        20 ms a request",
                     "  page size          1000 bars",
                     "  since honoured     yes",
                     f"  open bar included  {'yes' if expected['open_bar_included'] else 'no'}",
                     f"  oldest bar         {expected['oldest_bar']}",
                     "  requests made      4"]
    assert not text.lstrip().startswith("{")


def test_without_symbol_every_configured_series_gets_one_json_line(tmp_path, shared_sim):
    shared_sim.set_rate_limit("binance", enabled=False)
    config = e2e_config(tmp_path, shared_sim, {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "1h"]},
                                                           {"symbol": "ETH/USDT", "timeframes": ["5m"]}]})
    done = run_probe(config, "--exchange", "binance")
    assert done.returncode == exit_codes.OK, done.stderr
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert [(r["symbol"], r["timeframe"]) for r in lines] == [("BTC/USDT", "1m"), ("BTC/USDT", "1h"),
                                                              ("ETH/USDT", "5m")]
    assert all(r["oldest_bar"] == iso_utc(market("binance", r["symbol"]).listed_ms) for r in lines)
    named = run_probe(config, "--exchange", "binance", "--symbol", "SOL/USDT", "--symbol", "ETH/USDT",
                      "--timeframe", "15m")
    assert [(r["symbol"], r["timeframe"]) for r in map(json.loads, named.stdout.strip().splitlines())] == [
        ("SOL/USDT", "15m"), ("ETH/USDT", "15m")]


def test_a_symbol_not_listed_exits_2_before_any_candle_request(tmp_path, shared_sim):
    config = probe_config(tmp_path, shared_sim, "binance", "BTC/USDT")
    shared_sim.clear_requests()
    done = run_probe(config, "--exchange", "binance", "--symbol", "BTC/USDT", "--symbol", "NOPE/USDT")
    assert done.returncode == exit_codes.USAGE and "NOPE/USDT" in done.stderr
    assert not [r for r in shared_sim.requests if r.endpoint in DIALECTS["binance"].candle_endpoints]
