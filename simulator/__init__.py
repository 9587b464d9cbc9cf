"""The exchange simulator: REST dialects (Binance, Binance USDⓈ-M, Kraken, OKX, Gate, Bitget,
Hyperliquid, KuCoin, Coinbase, Bybit) for the real ccxt, on 127.0.0.1 only, with deterministic
prices, funding and open interest, ``truth()`` oracles, rate limits and faults.

The offline demo, the benchmark and the tests use it through the names below::

    sim = ExchangeSimulator(now=clock).start()      # clock() -> epoch seconds
    ex = ccxt.binance({**sim.ccxt_config("binance"), "enableRateLimit": True})
    sim.add_fault("binance", "http_503", count=2)    # or duration=seconds
    sim.set_latency(0.05, exchange="okx")
    sim.set_rate_limit("binance", limit=100)         # weight per minute
    sim.set_clock_offset(-2_500, exchange="kraken")  # exchange clock vs ours
    sim.counters("binance"); sim.requests; sim.stop()

``ExchangeSimulator(now=time.time, port=0, keep_alive=False)`` (HTTP/1.0, a connection per
request, so a fault reaches the client as it happened; ``keep_alive=True`` serves HTTP/1.1
with persistent connections, as the exchanges do); ``.start()``, ``.stop()``, context
manager; ``.base_url``; ``.ccxt_config(exchange)``; ``.exchange_now_ms(exchange)``;
``.set_latency(seconds, exchange=None)``; ``.set_clock_offset(ms, exchange=None)``
(per-exchange values override the global one; ``None`` removes an override);
``.add_fault(exchange, kind, count=None, duration=None, endpoint=None, **params)``
(returns an id; count and duration both None means count=1; exchange None
means every exchange; kinds in :mod:`simulator.faults`); ``.clear_faults(exchange=None)``;
``.faults()``; ``.set_rate_limit(exchange, enabled=, limit=, window=, ban_after=,
ban_seconds=, endpoint=)`` (defaults in :mod:`simulator.limits`);
``.set_listed(exchange, symbol, listed=True)`` (list or delist a market at run time);
``.set_quote_volume(exchange, symbol, volume)`` (its 24h ticker volume; None: the model's);
``.counters(exchange=None)``; ``.reset_counters()``; ``.requests`` (list of
:class:`RequestRecord`); ``.clear_requests()``; ``.state()``; the same knobs over HTTP at
``/_control`` (see :mod:`simulator.server`).

``ccxt_config(base_url, exchange)`` is ``.ccxt_config`` for a simulator in another
process. ``truth``, ``served_bar`` and ``quiet_minutes`` say what the simulator serves.

Extending it (the benchmark does): ``add_market(exchange, symbol, native_id, priced_like=)``
lists more markets; ``ExchangeSimulator(dialects={"binance": MyBinance()})`` serves a
subclass of a dialect (``Binance``, ``Kraken``, ``Okx``; a dialect maps a ``Request`` to a
``Reply``); ``.add_control(path, ops)`` steers the additions over HTTP.

``python -m simulator --port 8900`` runs one on its own.
"""

from .dialects import Binance, Bitget, Bybit, Coinbase, Dialect, Gate, Hyperliquid, Kraken, Kucoin, Okx, Reply, Request
from .faults import FAULT_KINDS
from .limits import RateLimitConfig, default_rate_limits
from .markets import MarketSpec, add_market
from .oracle import served_bar, truth
from .prices import quiet_minutes
from .server import EXCHANGES, ExchangeSimulator, RequestRecord, ccxt_config

__all__ = [
    "Binance",
    "Bitget",
    "Bybit",
    "Coinbase",
    "Dialect",
    "EXCHANGES",
    "ExchangeSimulator",
    "FAULT_KINDS",
    "Gate",
    "Hyperliquid",
    "Kraken",
    "Kucoin",
    "MarketSpec",
    "Okx",
    "RateLimitConfig",
    "Reply",
    "Request",
    "RequestRecord",
    "add_market",
    "ccxt_config",
    "default_rate_limits",
    "quiet_minutes",
    "served_bar",
    "truth",
]
