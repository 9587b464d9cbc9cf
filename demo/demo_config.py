"""The demo's collector config: every exchange pointed at the local exchange simulator.

Used by ``demo/run_demo.py``; also runnable on its own, for a simulator you started yourself
(``python -m simulator --port 8900``)::

    python demo/demo_config.py --sim-url http://127.0.0.1:8900 > data/demo/config.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator import ccxt_config  # noqa: E402

# The simulator lists BTC, ETH and SOL against USDT on binance and okx, against USD on kraken.
DEMO_SERIES: dict[str, list[dict]] = {
    "binance": [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m", "1h"]},
                {"symbol": "ETH/USDT", "timeframes": ["1m"]}],
    "okx": [{"symbol": "BTC/USDT", "timeframes": ["1m", "5m"]},
            {"symbol": "SOL/USDT", "timeframes": ["1m"]}],
    "kraken": [{"symbol": "BTC/USD", "timeframes": ["1m", "1h"]},
               {"symbol": "ETH/USD", "timeframes": ["1m"]}],
}


def build_config(sim_url: str, data_dir: Path, *, interval: int = 5, health_port: int = 0) -> dict:
    data_dir = Path(data_dir)
    return {
        "settings": {"update_interval_seconds": interval, "health_port": health_port,
                     "environment": "demo", "service_name": "tda-large-collector-demo",
                     "state_dir": str(data_dir / "state")},
        "storage": {"backend": "sqlite", "sqlite": {"path": str(data_dir / "market_data.sqlite")}},
        "exchanges": {exchange: {"ccxt": ccxt_config(sim_url, exchange), "symbols": symbols}
                      for exchange, symbols in DEMO_SERIES.items()},
    }


def write_config(path: Path, sim_url: str, data_dir: Path, **settings: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(build_config(sim_url, data_dir, **settings), sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print a collector config for the exchange simulator.")
    parser.add_argument("--sim-url", default="http://127.0.0.1:8900", help="the simulator's base URL")
    parser.add_argument("--data-dir", default="data/demo", help="where the SQLite file and state go")
    parser.add_argument("--interval", type=int, default=5, help="LIVE polling period in seconds")
    parser.add_argument("--health-port", type=int, default=0, help="0 = no health server")
    args = parser.parse_args(argv)
    config = build_config(args.sim_url, Path(args.data_dir), interval=args.interval, health_port=args.health_port)
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    main()
