"""``python -m simulator --port 8900``: the exchange simulator on its own, for a demo or a
collector you start yourself. Prints the base URL and the ccxt settings of each exchange."""

from __future__ import annotations

import argparse
import json
import signal
import time

from simulator import EXCHANGES, ExchangeSimulator


def stop_on_interrupt_or_term() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread.

    A program started in the background by a non-interactive shell (or under nohup) inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own: without
    this, ``kill -INT`` would leave the simulator running.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C, printing the base URL and ccxt config blocks."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=(
        "Offline exchange simulator: binance / kraken / okx REST dialects on 127.0.0.1."))
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    args = parser.parse_args(argv)
    stop_on_interrupt_or_term()
    sim = ExchangeSimulator(port=args.port).start()
    sim.set_latency(args.latency)
    print(f"exchange simulator listening on {sim.base_url}", flush=True)
    print(f"control: GET/POST {sim.base_url}/_control", flush=True)
    print("ccxt:", flush=True)
    for exchange in EXCHANGES:
        block = json.dumps(sim.ccxt_config(exchange), indent=2).replace("\n", "\n    ")
        print(f"  {exchange}:\n    {block}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
