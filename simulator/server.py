"""The simulator's HTTP server and its knobs.

Serves, on 127.0.0.1 only, the public endpoints ccxt 4.5.90 calls for
``load_markets()``, ``fetch_time()`` and ``fetch_ohlcv()``, under one path
prefix per exchange, so the real ccxt works with only ``urls``/``options``
overridden (:meth:`ExchangeSimulator.ccxt_config`). Candles come from the
deterministic model in :mod:`simulator.prices`; :func:`simulator.truth` gives
the exact closed candles any request should yield. Faults are described in
:mod:`simulator.faults`, the rate limiters in :mod:`simulator.limits`.

HTTP control (for a subprocess): ``GET /_control`` returns :meth:`state`;
``POST /_control`` with ``{"op": "<method name>", ...kwargs}`` calls one of
set_latency, set_clock_offset, add_fault, clear_faults, set_rate_limit,
reset_counters, clear_requests, counters, faults, state, requests.
:meth:`ExchangeSimulator.add_control` serves more operations the same way at another path.

The module stays whole above 400 lines because its knobs, its request path (clock, fault, rate
limit, dialect) and its HTTP control share one lock and one state; the dialects, prices,
faults and limits it uses each live in a module of their own.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .dialects import DIALECTS, Dialect, Reply, Request, mutate_rows
from .faults import BAD_ROW_KINDS, FAULT_KINDS, Fault, fault_reply
from .limits import Limiter, default_rate_limits

EXCHANGES = tuple(DIALECTS)
_CONTROL_OPS = frozenset({"set_latency", "set_clock_offset", "add_fault", "clear_faults",
                          "set_rate_limit", "reset_counters", "clear_requests", "counters",
                          "faults", "state", "requests", "set_listed", "set_quote_volume"})


@dataclass(frozen=True)
class RequestRecord:
    """One request as received (time is the simulator clock, in seconds)."""

    time: float
    exchange: str
    method: str
    path: str
    query: dict[str, str]
    endpoint: str | None
    fault: str | None
    client: str | None = None    # the request's X-Client header: which process asked
    connection: int | None = None  # the client's port: requests on one connection share it


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so client keep-alive retries
    (aiohttp re-sends on a dropped pooled connection) cannot mask faults."""

    server_version = "exchange-sim/1.0"

    def do_GET(self) -> None:
        self.server.sim._dispatch(self, self.command)   # type: ignore[attr-defined]

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class _KeepAliveHandler(_Handler):
    """HTTP/1.1 with keep-alive, as the exchanges serve it: a client reuses its connections.
    Every reply carries a Content-Length (``_send``), and a reset fault still closes."""

    protocol_version = "HTTP/1.1"


class ExchangeSimulator:
    """The server plus its knobs; every knob is thread-safe and live.

    ``dialects`` replaces built-in dialects by instances of their subclasses (by exchange
    name), e.g. a Binance that keeps pages it rendered once. ``keep_alive`` serves HTTP/1.1
    with persistent connections, as the exchanges do; the default, HTTP/1.0, shows every
    fault to the client as it happened.
    """

    def __init__(self, now: Callable[[], float] = time.time, port: int = 0,
                 dialects: Mapping[str, Dialect] | None = None, *, keep_alive: bool = False) -> None:
        unknown = set(dialects or ()) - set(DIALECTS)
        if unknown:
            raise ValueError(f"unknown exchanges {sorted(unknown)}; known: {list(DIALECTS)}")
        self._now = now
        self._port = port
        self._handler = _KeepAliveHandler if keep_alive else _Handler
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._dialects: dict[str, Dialect] = {name: cls() for name, cls in DIALECTS.items()}
        self._dialects.update(dialects or {})
        self._controls: dict[str, dict[str, Callable[..., object]]] = {}
        self._latency: dict[str | None, float] = {None: 0.0}
        self._offsets: dict[str | None, int] = {None: 0}
        self._limit_cfg = default_rate_limits()
        self._limiters = {ex: Limiter(cfg) for ex, cfg in self._limit_cfg.items()}
        self._faults: list[Fault] = []
        self._next_fault_id = 1
        self._log: deque[RequestRecord] = deque(maxlen=50_000)
        self._counters: dict[str, Counter] = {ex: Counter() for ex in EXCHANGES}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle --
    def start(self) -> ExchangeSimulator:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler)
        server.daemon_threads = True
        server.sim = self                                   # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="exchange-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_event.set()                              # wakes sleeping faults
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ExchangeSimulator:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def ccxt_config(self, exchange: str) -> dict:
        """Constructor overrides pointing ccxt at this simulator (spot only)."""
        return ccxt_config(self.base_url, exchange)

    def add_control(self, path: str, ops: Mapping[str, Callable[..., object]]) -> None:
        """Serve more JSON operations at ``path``, the way ``/_control`` serves the knobs:
        ``POST {"op": name, **kwargs}`` answers ``{"ok": true, "result": ops[name](**kwargs)}``,
        or HTTP 400 with ``{"ok": false, "error": ...}``.

        For a harness that runs the simulator in a process of its own and has added
        something of its own to steer (the benchmark's page cache).
        """
        path = "/" + path.strip("/")
        if path == "/_control" or path.split("/")[1] in self._dialects:
            raise ValueError(f"{path} is taken")
        self._controls[path] = dict(ops)

    # ---------------------------------------------------------------- knobs --
    def set_latency(self, seconds: float | None, exchange: str | None = None) -> None:
        """Delay added to every response; a per-exchange value overrides the
        global one, and None removes that override."""
        with self._lock:
            _set_or_clear(self._latency, exchange, None if seconds is None else float(seconds))

    def set_clock_offset(self, offset_ms: int | None, exchange: str | None = None) -> None:
        """Exchange clock = our clock + offset (same override rules as latency)."""
        with self._lock:
            _set_or_clear(self._offsets, exchange, None if offset_ms is None else int(offset_ms))

    def exchange_now_ms(self, exchange: str) -> int:
        """The exchange's clock right now (without consuming clock faults)."""
        with self._lock:
            return self._clock_ms(exchange, self._now(), consume=False)

    def add_fault(self, exchange: str | None, kind: str, count: int | None = None,
                  duration: float | None = None, endpoint: str | None = None, **params: object) -> int:
        """Inject a fault for the next ``count`` requests and/or ``duration`` seconds."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        if exchange is not None and exchange not in DIALECTS:
            raise ValueError(f"unknown exchange {exchange!r}")
        if count is None and duration is None:
            count = 1
        with self._lock:
            until = None if duration is None else self._now() + float(duration)
            fault = Fault(self._next_fault_id, exchange, kind, count, until, endpoint, dict(params))
            self._next_fault_id += 1
            self._faults.append(fault)
            return fault.id

    def clear_faults(self, exchange: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if exchange is not None and f.exchange != exchange]

    def faults(self) -> list[dict]:
        with self._lock:
            now = self._now()
            return [dataclasses.asdict(f) for f in self._faults if f.live(now)]

    def set_rate_limit(self, exchange: str, *, enabled: bool | None = None, limit: float | None = None,
                       window: float | None = None, ban_after: int | None = None,
                       ban_seconds: float | None = None, endpoint: str | None = None) -> None:
        """Change an exchange's limiter; its state (usage, bans) resets.

        ``limit``/``window`` with ``endpoint`` (okx) change that endpoint's
        bucket; without it they apply to every endpoint of the exchange.
        """
        with self._lock:
            cfg = self._limit_cfg[exchange]
            changes = {k: v for k, v in (("enabled", enabled), ("ban_after", ban_after),
                                         ("ban_seconds", ban_seconds)) if v is not None}
            per_endpoint = dict(cfg.per_endpoint)
            if endpoint is not None:
                old = per_endpoint.get(endpoint, (cfg.limit, cfg.window))
                per_endpoint[endpoint] = (old[0] if limit is None else limit,
                                          old[1] if window is None else window)
            else:
                changes.update({k: v for k, v in (("limit", limit), ("window", window))
                                if v is not None})
                if limit is not None or window is not None:
                    per_endpoint = {}
            cfg = dataclasses.replace(cfg, per_endpoint=per_endpoint, **changes)
            self._limit_cfg[exchange] = cfg
            self._limiters[exchange] = Limiter(cfg)

    def set_listed(self, exchange: str, symbol: str, listed: bool = True) -> None:
        """List or delist a market at run time: a delisted market leaves the market list and
        the tickers, and its candle requests get the exchange's unknown-symbol error."""
        dialect = self._dialect_market(exchange, symbol)
        key = dialect[1]
        with self._lock:
            (dialect[0].delisted.discard if listed else dialect[0].delisted.add)(key)

    def set_quote_volume(self, exchange: str, symbol: str, volume: float | None) -> None:
        """Fix a market's 24h quote volume in the tickers (None: back to the model's)."""
        dialect, key = self._dialect_market(exchange, symbol)
        with self._lock:
            _set_or_clear(dialect.quote_volumes, key, None if volume is None else float(volume))

    def _dialect_market(self, exchange: str, symbol: str) -> tuple[Dialect, str]:
        dialect = self._dialects[exchange]
        for key, spec in dialect.markets.items():
            if spec.symbol == symbol:
                return dialect, key
        raise KeyError(f"{exchange} has no market {symbol}")

    def counters(self, exchange: str | None = None) -> dict:
        """Request counts: total, per endpoint, per status, 429/418, faults."""
        with self._lock:
            if exchange is None:
                return {ex: dict(c) for ex, c in self._counters.items()}
            return dict(self._counters[exchange])

    def reset_counters(self) -> None:
        with self._lock:
            self._counters = {ex: Counter() for ex in EXCHANGES}

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def state(self) -> dict:
        with self._lock:
            limits = {ex: dataclasses.asdict(cfg) for ex, cfg in self._limit_cfg.items()}
            latency = {str(k): v for k, v in self._latency.items()}
            offsets = {str(k): v for k, v in self._offsets.items()}
            counters = {ex: dict(c) for ex, c in self._counters.items()}
        return {"base_url": self.base_url, "latency": latency, "clock_offset_ms": offsets,
                "rate_limits": limits, "faults": self.faults(), "counters": counters}

    # ------------------------------------------------------------- serving --
    def _clock_ms(self, exchange: str, now: float, consume: bool) -> int:
        offset = self._offsets.get(exchange, self._offsets[None])
        for fault in self._faults:
            if fault.kind == "clock_offset" and fault.live(now) and fault.matches(exchange, None):
                offset += int(fault.params.get("offset_ms", 0))
                if consume:
                    fault.consume()
        return int(now * 1000) + offset

    def _take_fault(self, exchange: str, endpoint: str | None, now: float) -> Fault | None:
        self._faults = [f for f in self._faults if f.live(now)]
        candles = self._dialects[exchange].candle_endpoints
        for fault in self._faults:
            if fault.kind == "clock_offset" or not fault.matches(exchange, endpoint):
                continue
            if fault.kind in BAD_ROW_KINDS and endpoint not in candles:
                continue
            fault.consume()
            return fault
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path.rstrip("/") == "/_control":
            _send(handler, self._control(handler, method))
            return
        ops = self._controls.get(url.path.rstrip("/"))
        if ops is not None:
            _send(handler, _call_op(handler, ops.get))
            return
        exchange, _, rest = url.path.lstrip("/").partition("/")
        if exchange not in self._dialects:
            _send(handler, Reply(404, b"Not Found", content_type="text/plain"))
            return
        self._serve(handler, exchange, method, "/" + rest, query, _json_body(handler))

    def _serve(self, handler: BaseHTTPRequestHandler, exchange: str, method: str,
               path: str, query: dict[str, str], body: object = None) -> None:
        dialect = self._dialects[exchange]
        endpoint = dialect.route_request(path, body)
        query = {**query, **dialect.path_params(path)}
        with self._lock:
            now = self._now()
            now_ms = self._clock_ms(exchange, now, consume=True)
            fault = self._take_fault(exchange, endpoint, now)
            latency = self._latency.get(exchange, self._latency[None])
            self._log.append(RequestRecord(now, exchange, method, path, query, endpoint,
                                           fault.kind if fault else None, handler.headers.get("X-Client"),
                                           handler.client_address[1]))
            counts = self._counters[exchange]
            counts["requests"] += 1
            counts[f"endpoint:{endpoint or path}"] += 1
            if fault:
                counts[f"fault:{fault.kind}"] += 1
        if latency > 0:
            self._stop_event.wait(latency)
        if fault and fault.kind == "reset":
            _reset(handler)
            return
        if fault and fault.kind == "timeout":
            self._stop_event.wait(float(fault.params.get("seconds", 30.0)))
        reply = fault_reply(dialect, fault, now_ms) if fault else None
        if reply is None:
            reply = self._answer(dialect, exchange, endpoint, query, now_ms, fault, body)
        with self._lock:
            counts = self._counters[exchange]
            counts[f"status:{reply.status}"] += 1
            if reply.status in (418, 429):
                counts[f"http_{reply.status}"] += 1
        _send(handler, reply)

    def _answer(self, dialect: Dialect, exchange: str, endpoint: str | None,
                query: dict[str, str], now_ms: int, fault: Fault | None, body: object = None) -> Reply:
        if endpoint is None:
            return Reply(404, b"Not Found", content_type="text/plain")
        with self._lock:
            limiter = self._limiters[exchange]
            # A JSON body (Hyperliquid) can change the weight: candleSnapshot and fundingHistory pay
            # per item, counted up to the exchange's clock when the body gives no endTime.
            cost = (dialect.cost(endpoint, query) if body is None
                    else dialect.cost(endpoint, query, body=body, now_ms=now_ms))
            verdict, retry = limiter.check(endpoint, cost, self._now())
            used = limiter.used
            if verdict != "ok":
                self._counters[exchange]["rate_limited"] += 1
        if verdict != "ok":
            return dialect.rate_limited(retry, now_ms, banned=verdict == "banned")
        mutate = partial(mutate_rows, fault.kind) if fault and fault.kind in BAD_ROW_KINDS else None
        reply = dialect.handle(Request(endpoint, query, now_ms, mutate, body))
        if exchange == "binance":
            reply.headers["X-MBX-USED-WEIGHT-1M"] = str(int(used))
        return reply

    def _control(self, handler: BaseHTTPRequestHandler, method: str) -> Reply:
        """JSON control plane so a subprocess (demo, collector) can be steered."""
        if method == "GET":
            return Reply(body={"ok": True, "result": self.state()})
        return _call_op(handler, self._control_op)

    def _control_op(self, op: str) -> Callable[..., object] | None:
        if op == "requests":
            return lambda limit=1000: [dataclasses.asdict(r) for r in self.requests[-int(limit):]]
        return getattr(self, op) if op in _CONTROL_OPS else None


def _call_op(handler: BaseHTTPRequestHandler, lookup: Callable[[str], Callable[..., object] | None]) -> Reply:
    """Run the operation a JSON control request names; errors go back to the caller."""
    try:
        length = int(handler.headers.get("Content-Length") or 0)
        args = json.loads(handler.rfile.read(length) or b"{}")
        op = args.pop("op")
        call = lookup(op)
        if call is None:
            raise ValueError(f"unknown op {op!r}")
        return Reply(body={"ok": True, "result": call(**args)})
    except Exception as exc:                                # reported to the caller
        return Reply(400, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def ccxt_config(base_url: str, exchange: str) -> dict:
    """ccxt constructor overrides that send every request of ``exchange`` to the simulator
    at ``base_url``; for a simulator running in another process."""
    if exchange not in DIALECTS:
        raise KeyError(exchange)
    return DIALECTS[exchange].ccxt_config(f"{base_url.rstrip('/')}/{exchange}")


def _json_body(handler: BaseHTTPRequestHandler) -> object:
    """The JSON body of a request (Hyperliquid's POST /info names its endpoint there), or None."""
    length = int(handler.headers.get("Content-Length") or 0)
    if length <= 0:
        return None
    raw = handler.rfile.read(length)
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _set_or_clear(table: dict, exchange: str | None, value: object) -> None:
    if value is None:
        if exchange is not None:
            table.pop(exchange, None)
    else:
        table[exchange] = value


def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    body = reply.body if isinstance(reply.body, bytes) else json.dumps(
        reply.body, separators=(",", ":")).encode()
    try:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass                                                # client gave up (timeout fault)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close with SO_LINGER=0 so the client sees a TCP RST and no response."""
    handler.close_connection = True
    sock = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
