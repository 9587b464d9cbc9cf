"""Faults the simulator injects, and the reply each one turns into.

Kinds: ``http_500|502|503|504`` (HTML error page), ``http_429`` (HTTP 429
+ Retry-After with the exchange's rate-limit body), ``rate_limit`` (exactly
what the exchange's limiter answers: binance 429, kraken 200 + "EAPI:Rate
limit exceeded", okx 429 + code 50011), ``exchange_error`` (native internal
error: binance 503 -1008, kraken 200 "EService:Unavailable", okx 200 code
50026), ``timeout`` (sleep ``seconds``, default 30, then answer),
``reset`` (close the socket with RST, no response), ``garbage`` (200 with a
non-JSON body), ``clock_offset`` (``offset_ms`` added to the exchange clock
while active), and kline-only ``bad_null``, ``bad_negative_volume``,
``bad_high_low``, ``bad_offgrid``, ``bad_duplicate``, ``bad_order`` (each
corrupts the middle row of the next served candle page). ``endpoint`` limits a
fault to endpoints containing that string (e.g. "klines", "history-candles").
"""
from __future__ import annotations

from dataclasses import dataclass

from .dialects import Dialect, Reply, html_error

BAD_ROW_KINDS = frozenset({"bad_null", "bad_negative_volume", "bad_high_low", "bad_offgrid",
                           "bad_duplicate", "bad_order"})
FAULT_KINDS = frozenset({"http_500", "http_502", "http_503", "http_504", "http_429",
                         "rate_limit", "exchange_error", "timeout", "reset", "garbage",
                         "clock_offset"}) | BAD_ROW_KINDS
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


@dataclass
class Fault:
    """One injected fault; ``remaining`` and ``until`` (simulator clock) bound its life."""

    id: int
    exchange: str | None
    kind: str
    remaining: int | None
    until: float | None
    endpoint: str | None
    params: dict

    def live(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)

    def matches(self, exchange: str, endpoint: str | None) -> bool:
        return (self.exchange in (None, exchange)
                and (self.endpoint is None or (endpoint is not None and self.endpoint in endpoint)))

    def consume(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


def fault_reply(dialect: Dialect, fault: Fault, now_ms: int) -> Reply | None:
    """The reply a fault sends instead of the exchange's answer; None for faults that do not
    replace it (timeout, clock_offset, bad rows) or send nothing (reset)."""
    kind = fault.kind
    if kind.startswith("http_5"):
        status = int(kind[5:])
        return html_error(status, _REASONS[status])
    if kind == "http_429":
        reply = dialect.rate_limited(float(fault.params.get("retry_after", 1)), now_ms, status=429)
        reply.headers.setdefault("Retry-After", str(int(fault.params.get("retry_after", 1))))
        return reply
    if kind == "rate_limit":
        return dialect.rate_limited(float(fault.params.get("retry_after", 1)), now_ms)
    if kind == "exchange_error":
        return dialect.exchange_error()
    if kind == "garbage":
        body = fault.params.get("body", "upstream connect error or disconnect/reset before "
                                "headers. reset reason: connection termination<html>\x00")
        return Reply(200, str(body).encode(), content_type="text/html")
    return None
