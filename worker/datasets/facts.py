"""What each exchange serves of the derivative datasets: page sizes, how far back, periods.

Checked against ccxt 4.5.90 and the exchanges' API docs:
- Binance USDⓈ-M: GET /fapi/v1/fundingRate, limit up to 1,000, ascending from startTime;
  GET /futures/data/openInterestHist, limit up to 500, periods 5m..1d, "only the data of the
  latest 1 month is available" (30 days).
- OKX: GET /api/v5/public/funding-rate-history, 100 a page, newest first, about the last 3
  months; GET /api/v5/rubik/stat/contracts/open-interest-history, 100 a page (ccxt windows
  ``since`` + limit periods). ccxt asks only for 5m, 1H and 1D, and OKX's 1D opens at Hong
  Kong midnight (16:00 UTC), off the UTC day grid every stored period is on: 5m and 1h only.
- Hyperliquid: POST /info {"type": "fundingHistory"}, ascending from startTime, at most 500
  a response, one rate an hour, kept since the coin's listing; ccxt keeps the first ``limit``
  of the answer (hyperliquid.fetch_funding_rate_history). No open-interest history
  (has["fetchOpenInterestHistory"] is False), so such a series is skipped with that reason.
- Bybit: GET /v5/market/funding/history, 200 a page, the newest before ``endTime`` first. ccxt
  (bybit.fetch_funding_rate_history) turns a ``since`` into the window since + limit funding
  intervals (instruments-info ``fundingInterval``): a window that starts on a funding time holds
  one more than the page and loses its oldest, and a window before the listing comes back empty
  as if the range were done. Pages go back from ``until`` instead, which ccxt sends alone.
  GET /v5/market/open-interest, 200 a page, intervals 5min, 15min, 30min, 1h, 4h, 1d (ccxt
  options.intervals); a lone startTime is ignored, which the open-interest windows never send
  (they always give ``until``). Both are served back to the listing: no history limit.
An exchange not listed here is used through ccxt with a conservative page and no known
history limit.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True)
class DatasetFacts:
    page_limit: int
    history_days: float | None = None          # None: no known limit
    periods: tuple[str, ...] | None = None     # open interest: the periods served; None: any
    newest_first: bool = False                 # pages go back from an ``after`` cursor (OKX funding)
    # newest_first: the parameter that names the cursor: OKX's own ``after`` (exclusive), or
    # ccxt's unified ``until`` (inclusive; Bybit's endTime).
    before_param: str = "after"


BINANCE_OI_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
BYBIT_OI_PERIODS = ("5m", "15m", "30m", "1h", "4h", "1d")

FUNDING: dict[str, DatasetFacts] = {
    "binanceusdm": DatasetFacts(1000),
    "binance": DatasetFacts(1000),
    "okx": DatasetFacts(100, history_days=90, newest_first=True),
    "hyperliquid": DatasetFacts(500),
    "bybit": DatasetFacts(200, newest_first=True, before_param="until"),
}

OPEN_INTEREST: dict[str, DatasetFacts] = {
    "binanceusdm": DatasetFacts(500, history_days=30, periods=BINANCE_OI_PERIODS),
    "binance": DatasetFacts(500, history_days=30, periods=BINANCE_OI_PERIODS),
    "okx": DatasetFacts(100, periods=("5m", "1h")),
    "bybit": DatasetFacts(200, periods=BYBIT_OI_PERIODS),
}

DEFAULT = DatasetFacts(100)


def funding_facts(exchange_id: str) -> DatasetFacts:
    return FUNDING.get(exchange_id, DEFAULT)


def open_interest_facts(exchange_id: str) -> DatasetFacts:
    return OPEN_INTEREST.get(exchange_id, DEFAULT)
