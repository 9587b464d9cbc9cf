"""What each exported dataset is: its store view, its columns, its partition levels.

One entry per dataset. Funding rates have no timeframe level; their rows are keyed by
(exchange, symbol, timestamp). A dataset whose view the store does not have is skipped, so
the entries can precede the collectors that fill them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")   # BigQuery's TIMESTAMP precision


@dataclass(frozen=True)
class ExportDataset:
    name: str                                  # the first directory level under --out
    latest_view: str                           # one row per key: the latest ingested_at
    schema: pa.Schema                          # the store's columns, in the store's order
    partition_by: tuple[str, ...]              # directory levels before date=YYYY-MM-DD


_MARKET = [("timestamp", TIMESTAMP), ("exchange", pa.string()), ("symbol", pa.string())]

DATASETS: tuple[ExportDataset, ...] = (
    ExportDataset("ohlcv", "market_data_ohlcv_latest", pa.schema([
        *_MARKET, ("timeframe", pa.string()), ("open", pa.float64()), ("high", pa.float64()),
        ("low", pa.float64()), ("close", pa.float64()), ("volume", pa.float64()),
        ("ingested_at", TIMESTAMP)]), ("exchange", "symbol", "timeframe")),
    ExportDataset("funding_rates", "market_data_funding_rates_latest", pa.schema([
        *_MARKET, ("funding_rate", pa.float64()), ("ingested_at", TIMESTAMP)]), ("exchange", "symbol")),
    ExportDataset("open_interest", "market_data_open_interest_latest", pa.schema([
        *_MARKET, ("timeframe", pa.string()), ("open_interest_amount", pa.float64()),
        ("open_interest_value", pa.float64()), ("ingested_at", TIMESTAMP)]),
        ("exchange", "symbol", "timeframe")),
)
