"""Config loading: the SDD's file, the long form, and one readable message per problem."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]

SDD_CONFIG = """
settings:
  update_interval_seconds: 60  # Global polling rate for LIVE mode

exchanges:
  binance:
    - symbol: "BTC/USDT"
      timeframes: ["1m", "1h", "1d"]
    - symbol: "ETH/USDT"
      timeframes: ["1d"]
  kraken:
    - symbol: "SOL/USD"
      timeframes: ["4h"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str, environ: dict | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ or {})
    return dict(info.value.problems)


def test_config_loader(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SDD_CONFIG), {})
    assert config.settings.update_interval_seconds == 60
    assert list(config.exchanges) == ["binance", "kraken"]
    binance = config.exchanges["binance"]
    assert [(s.symbol, s.timeframes) for s in binance.symbols] == [
        ("BTC/USDT", ["1m", "1h", "1d"]), ("ETH/USDT", ["1d"])]
    assert config.exchanges["kraken"].symbols[0].timeframes == ["4h"]
    assert config.storage.backend == "sqlite"
    assert config.series_count() == 5


def test_long_form_storage_and_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
        settings: {update_interval_seconds: 15, history_page_limit: 500, health_port: 0}
        storage:
          backend: bigquery
          bigquery: {project: p1, dataset: md, location: EU}
        exchanges:
          kraken:
            ccxt: {timeout: 5000, options: {a: 1}}
            symbols:
              - {symbol: SOL/USD, timeframes: [4h]}
        """), {})
    assert config.exchanges["kraken"].ccxt == {"timeout": 5000, "options": {"a": 1}}
    assert config.storage.bigquery.project == "p1" and config.storage.bigquery.location == "EU"
    assert config.settings.health_port == 0


def test_environment_overrides(tmp_path: Path) -> None:
    text = SDD_CONFIG + "\nstorage: {backend: bigquery, bigquery: {dataset: md}}\n"
    config = load_config(write(tmp_path, text),
                         {"ENVIRONMENT": "staging", "LOG_LEVEL": "debug", "GOOGLE_CLOUD_PROJECT": "gp"})
    assert config.settings.environment == "staging"
    assert config.settings.log_level == "DEBUG"
    assert config.storage.bigquery.project == "gp"


def test_the_repository_example_config_is_valid() -> None:
    load_config(ROOT / "config.yaml", {})


@pytest.mark.parametrize("text, path, fragment", [
    ("settings: {colour: blue}\nexchanges: {binance: [{symbol: BTC/USDT, timeframes: [1m]}]}",
     "settings.colour", "unknown key"),
    ("exchanges: {binanse: [{symbol: BTC/USDT, timeframes: [1m]}]}",
     "exchanges.binanse", "unknown exchange id"),
    ("exchanges: {binance: [{symbol: BTC/USDT, timeframes: [7x]}]}",
     "exchanges.binance[0].timeframes", "'7x' is not a timeframe"),
    ("exchanges: {binance: [{symbol: btcusdt, timeframes: [1m]}]}",
     "exchanges.binance[0].symbol", "BASE/QUOTE"),
    ("settings: {update_interval_seconds: 0}\nexchanges: {binance: [{symbol: BTC/USDT, timeframes: [1m]}]}",
     "settings.update_interval_seconds", "greater than 0"),
    ("settings: {history_page_limit: -5}\nexchanges: {binance: [{symbol: BTC/USDT, timeframes: [1m]}]}",
     "settings.history_page_limit", "greater than 0"),
    ("exchanges: {binance: [{symbol: BTC/USDT, timeframes: [1m]}, {symbol: BTC/USDT, timeframes: [1h]}]}",
     "exchanges.binance", "more than once"),
    ("exchanges: {binance: [{symbol: BTC/USDT, timeframes: [1m, 1m]}]}",
     "exchanges.binance[0].timeframes", "more than once"),
    ("exchanges: {binance: [{symbol: BTC/USDT, timeframes: []}]}",
     "exchanges.binance[0].timeframes", "at least 1"),
    ("exchanges: {binance: [{symbol: BTC/USDT}]}",
     "exchanges.binance[0].timeframes", "required"),
    ("exchanges: {}", "exchanges", "at least 1"),
    ("settings: {}", "exchanges", "required"),
    ("storage: {backend: postgres}\nexchanges: {binance: [{symbol: BTC/USDT, timeframes: [1m]}]}",
     "storage.backend", "sqlite"),
    ("exchanges: {kraken: {ccxt: {}, symbols: [{symbol: SOL/USD, timeframes: [4h], extra: 1}]}}",
     "exchanges.kraken.symbols[0].extra", "unknown key"),
])
def test_each_config_error_names_its_key_path(tmp_path: Path, text: str, path: str, fragment: str) -> None:
    problems = problems_of(tmp_path, text)
    assert path in problems, problems
    assert fragment in problems[path]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, """
        settings: {colour: blue}
        exchanges:
          binanse: [{symbol: BTC/USDT, timeframes: [1m]}]
          kraken: [{symbol: SOL/USD, timeframes: [7x]}]
        """)
    assert set(problems) == {"settings.colour", "exchanges.binanse", "exchanges.kraken[0].timeframes"}


@pytest.mark.parametrize("text, fragment", [
    ("exchanges: [unclosed", "not valid YAML at line 1"),
    ("- just\n- a list", "must be a mapping"),
    ("", "must be a mapping"),
])
def test_unreadable_files(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in problems_of(tmp_path, text)[""]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml", {})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_validate_config_cli_accepts_the_example() -> None:
    result = run_cli("--validate-config", "--config", "config.yaml")
    assert result.returncode == 0, result.stderr


def test_validate_config_cli_exits_2_naming_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, """
        settings: {colour: blue}
        exchanges:
          binanse: [{symbol: BTC/USDT, timeframes: [1m]}]
          kraken: [{symbol: SOL/USD, timeframes: [7x]}]
        """)
    result = run_cli("--validate-config", "--config", str(path))
    assert result.returncode == 2
    for expected in ("settings.colour", "unknown key", "exchanges.binanse", "unknown exchange id",
                     "exchanges.kraken[0].timeframes", "'7x'"):
        assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("storage, settings, expected", [
    ("", "", 10_000),                                           # SQLite by default
    ("storage:\n  backend: bigquery\n  bigquery: {project: p}\n", "", 50_000),
    ("", "settings:\n  history_flush_rows: 2500\n", 2_500),     # a value in the file wins
    ("storage:\n  backend: bigquery\n  bigquery: {project: p}\n", "settings:\n  history_flush_rows: 2500\n", 2_500),
])
def test_history_batches_are_sized_for_the_store(tmp_path: Path, storage: str, settings: str,
                                                 expected: int) -> None:
    text = storage + settings + "exchanges:\n  binance:\n    - symbol: BTC/USDT\n      timeframes: [1m]\n"
    assert load_config(write(tmp_path, text), {}).settings.history_flush_rows == expected
