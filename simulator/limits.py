"""Each exchange's rate limiter, enforced with the simulator's clock.

binance = request weight per fixed clock-aligned window (6000/60 s; klines 2,
exchangeInfo 20, time 1), 429 + Retry-After when exceeded; after ``ban_after`` (3)
more 429s in one window every request gets 418 for ``ban_seconds`` (120, doubling
per ban). kraken = token bucket of 15 requests refilled at 1/s. okx = token bucket
per endpoint (candles 40/2 s, history-candles 20/2 s, funding-rate-history and
open-interest-history 10/2 s, others 20/2 s).
gate = token bucket of 200 requests per 10 s per endpoint (public spot endpoints).
bitget = token bucket of 20 requests per second per endpoint (candles, history-candles).
hyperliquid = one bucket of 1200 weight per minute per IP for every /info request (weights in
:mod:`simulator.dialects.hyperliquid`).
kucoin = the public pool: 2000 weight per fixed 30 s window per IP, shared by every public endpoint
(klines weigh 3; weights in :mod:`simulator.dialects.kucoin`).
coinbase = 10 requests per second per IP over every public endpoint (one bucket; Coinbase docs
"Advanced Trade API rate limits"; ccxt paces public v3 endpoints at 34 ms x cost 3).
bybit = one bucket of 600 requests per 5 s per IP for every public endpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateLimitConfig:
    """Limiter settings; ``limit`` units per ``window`` seconds."""

    algorithm: str = "bucket"        # "window" (binance weight) or "bucket"
    enabled: bool = True
    limit: float = 20.0
    window: float = 2.0
    ban_after: int = 0               # window: 429s tolerated per window before 418
    ban_seconds: float = 120.0
    per_endpoint: dict[str, tuple[float, float]] = field(default_factory=dict)
    shared: bool = False             # bucket: one bucket for every endpoint (Hyperliquid's weight)
    # window: endpoints with a request limit of their own besides the weight, (requests,
    # seconds) per fixed window (Binance USDⓈ-M fundingRate 500/5 min, openInterestHist 1000/5 min).
    endpoint_windows: dict[str, tuple[float, float]] = field(default_factory=dict)


def default_rate_limits() -> dict[str, RateLimitConfig]:
    """What each exchange allows out of the box."""
    return {
        "binance": RateLimitConfig("window", limit=6000, window=60, ban_after=3),
        "kraken": RateLimitConfig("bucket", limit=15, window=15),
        "binanceusdm": RateLimitConfig("window", limit=2400, window=60, ban_after=3, endpoint_windows={
            "fundingRate": (500, 300), "openInterestHist": (1000, 300)}),
        "okx": RateLimitConfig("bucket", limit=20, window=2, per_endpoint={
            "market/candles": (40, 2), "market/history-candles": (20, 2),
            "public/funding-rate-history": (10, 2), "rubik/stat/contracts/open-interest-history": (10, 2)}),
        "gate": RateLimitConfig("bucket", limit=200, window=10),
        "bitget": RateLimitConfig("bucket", limit=20, window=1),
        "hyperliquid": RateLimitConfig("bucket", limit=1200, window=60, shared=True),
        "kucoin": RateLimitConfig("window", limit=2000, window=30),
        "coinbase": RateLimitConfig("bucket", limit=10, window=1, shared=True),
        "bybit": RateLimitConfig("bucket", limit=600, window=5, shared=True),
    }



class Limiter:
    """Binance-style fixed windows with 429 -> 418 escalation, or token buckets."""

    def __init__(self, cfg: RateLimitConfig) -> None:
        self.cfg = cfg
        self.window_start = -1.0
        self.used = 0.0
        self.strikes = 0
        self.banned_until = 0.0
        self.ban_seconds = cfg.ban_seconds
        self.buckets: dict[str, tuple[float, float]] = {}      # key -> (tokens, last)
        self.endpoint_counts: dict[str, tuple[float, int]] = {}  # key -> (window start, requests)

    def check(self, key: str, cost: float, now: float) -> tuple[str, float]:
        """Return ("ok" | "limited" | "banned", retry_after_seconds)."""
        if self.cfg.algorithm == "window":
            if key in self.cfg.endpoint_windows and self.cfg.enabled:
                verdict = self._endpoint_window(key, now)
                if verdict[0] != "ok":
                    return verdict
            return self._window(cost, now)
        if not self.cfg.enabled:
            return "ok", 0.0
        return self._bucket("*" if self.cfg.shared else key, cost, now)

    def _window(self, cost: float, now: float) -> tuple[str, float]:
        if now < self.banned_until and self.cfg.enabled:
            return "banned", self.banned_until - now
        start = now // self.cfg.window * self.cfg.window
        if start != self.window_start:
            self.window_start, self.used, self.strikes = start, 0.0, 0
        self.used += cost                   # tracked even when disabled (weight header)
        if self.used <= self.cfg.limit or not self.cfg.enabled:
            return "ok", 0.0
        self.strikes += 1
        if self.cfg.ban_after and self.strikes > self.cfg.ban_after:
            # Binance: "repeatedly violating rate limits ... will result in an
            # automated IP ban (HTTP status 418)", with growing durations.
            self.banned_until = now + self.ban_seconds
            self.ban_seconds *= 2
            return "banned", self.banned_until - now
        return "limited", start + self.cfg.window - now

    def _endpoint_window(self, key: str, now: float) -> tuple[str, float]:
        limit, window = self.cfg.endpoint_windows[key]
        start = now // window * window
        began, count = self.endpoint_counts.get(key, (start, 0))
        count = count + 1 if began == start else 1
        self.endpoint_counts[key] = (start, count)
        return ("ok", 0.0) if count <= limit else ("limited", start + window - now)

    def _bucket(self, key: str, cost: float, now: float) -> tuple[str, float]:
        limit, window = self.cfg.per_endpoint.get(key, (self.cfg.limit, self.cfg.window))
        rate = limit / window
        tokens, last = self.buckets.get(key, (limit, now))
        tokens = min(limit, tokens + max(0.0, now - last) * rate)
        if tokens >= cost:
            self.buckets[key] = (tokens - cost, now)
            return "ok", 0.0
        self.buckets[key] = (tokens, now)
        return "limited", (cost - tokens) / rate
