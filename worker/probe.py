"""``--mode probe``: a few requests that show what an exchange serves before it is configured.

Runs in a child process (it talks to ccxt through the adapter); it prints its own result and
exits with the command's code, so the supervisor only relays the exit code.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import exit_codes
from core.retry import Backoff
from core.timefmt import iso_utc
from core.timeframes import timeframe_ms
from worker.errors import ExchangeSetupError, ExchangeUnavailable
from worker.exchange import ExchangeClient

# The oldest instant bisection looks at: no exchange served candles before this.
FLOOR_MS = int(datetime(2010, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_BISECT_REQUESTS = 20
DEFAULT_PAGE = 1000
# A probe is interactive: one quick retry, not the collector's patient backoff.
PROBE_BACKOFF = Backoff(base=0.2, factor=2.0, cap=1.0, attempts=2)


@dataclass(frozen=True)
class ProbeRequest:
    exchange_id: str
    ccxt_settings: dict[str, Any]
    symbol: str | None
    timeframe: str
    configured_symbols: tuple[str, ...]
    as_json: bool


class Prober:
    """Counts the requests it makes so the user sees what the probe cost."""

    def __init__(self, client: ExchangeClient, symbol: str, timeframe: str, tf_ms: int) -> None:
        self.client, self.symbol, self.timeframe, self.tf_ms = client, symbol, timeframe, tf_ms
        self.requests = 0

    async def page(self, since: int | None, limit: int) -> list[list[Any]]:
        self.requests += 1
        return await self.client.fetch_ohlcv(self.symbol, self.timeframe, since, limit)

    async def served_from(self, since: int, limit: int) -> bool:
        """A since is served when the page starts near it; empty, error or far later is not."""
        try:
            rows = await self.page(since, limit)
        except ExchangeUnavailable:
            raise
        except Exception:  # noqa: BLE001 -- an exchange refusing an old since means "not served"
            return False
        return bool(rows) and rows[0][0] - since < limit * self.tf_ms

    async def oldest_bar(self, newest_ms: int, limit: int) -> int | None:
        """Bisection on since between FLOOR_MS (not served) and newest_ms (served)."""
        low, high = FLOOR_MS, newest_ms
        if await self.served_from(low, limit):
            high = low
        budget = MAX_BISECT_REQUESTS - 1
        while high - low > self.tf_ms and budget > 0:
            mid = (low + high) // 2 // self.tf_ms * self.tf_ms
            budget -= 1
            if await self.served_from(mid, limit):
                high = mid
            else:
                low = mid
        rows = await self.page(high, limit)
        return rows[0][0] if rows else None


async def probe(request: ProbeRequest, now_ms: int) -> dict[str, Any]:
    client = ExchangeClient(request.exchange_id, request.ccxt_settings, network_backoff=PROBE_BACKOFF,
                            rate_limit_backoff=PROBE_BACKOFF)
    await client.open()
    try:
        symbol = request.symbol or next(iter(request.configured_symbols), None) or "BTC/USDT"
        if client.market(symbol) is None:
            raise ValueError(f"--symbol {symbol}: not listed on {request.exchange_id}")
        if request.timeframe not in client.timeframes():
            raise ValueError(f"--timeframe {request.timeframe}: not offered by {request.exchange_id} "
                             f"(offered: {', '.join(client.timeframes())})")
        tf_ms = timeframe_ms(request.timeframe)
        limit = client.max_ohlcv_limit(symbol, request.timeframe) or DEFAULT_PAGE
        prober = Prober(client, symbol, request.timeframe, tf_ms)
        bucket = now_ms // tf_ms * tf_ms
        deep = await prober.page(bucket - 10 * limit * tf_ms, limit)
        honoured_since = bucket - 3 * limit * tf_ms
        first = await prober.page(honoured_since, limit)
        newest = await prober.page(None, limit)
        oldest = await prober.oldest_bar(bucket, limit)
        return {"exchange": request.exchange_id, "symbol": symbol, "timeframe": request.timeframe,
                "timeframes": client.timeframes(), "rate_limit_ms": client.rate_limit_ms(),
                "page_size": len(deep), "since_honoured": bool(first) and first[0][0] == honoured_since,
                "open_bar_included": bool(newest) and newest[-1][0] == bucket,
                "oldest_bar": None if oldest is None else iso_utc(oldest), "requests": prober.requests}
    finally:
        await client.close()


def render(result: dict[str, Any]) -> str:
    width = max(len(k) for k in result)
    return "\n".join(f"{k.ljust(width)}  {', '.join(v) if isinstance(v, list) else v}" for k, v in result.items())


def probe_main(params: dict[str, Any]) -> None:
    """Child-process entry point: prints the result and exits with the command's code."""
    request = ProbeRequest(**params)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    try:
        result = asyncio.run(probe(request, now_ms))
    except ExchangeSetupError as exc:
        print(f"error: --exchange {request.exchange_id}: unknown to ccxt ({exc})", file=sys.stderr)
        sys.exit(exit_codes.USAGE)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exit_codes.USAGE)
    except Exception as exc:  # noqa: BLE001 -- network errors, exchange down: the user needs the reason
        print(f"error: {request.exchange_id} cannot be reached: {exc}", file=sys.stderr)
        sys.exit(exit_codes.UNREACHABLE)
    print(json.dumps(result) if request.as_json else render(result), flush=True)
    sys.exit(exit_codes.OK)
