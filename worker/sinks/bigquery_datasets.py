"""The funding-rate and open-interest tables in BigQuery: schemas, rows, insertIds, views.

Like the candle table: DAY-partitioned on ``timestamp``, clustered by exchange and symbol,
every version kept, a ``_latest`` view picking the newest ``ingested_at`` per key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from google.cloud import bigquery

from core.series import FUNDING_RATES, OPEN_INTEREST, FundingRow, OpenInterestRow
from core.timefmt import iso_utc
from worker.sinks.tables import POINT_TABLES, TableSpec

_REQ, _NULL = "REQUIRED", "NULLABLE"
_COMMON = {
    "exchange": bigquery.SchemaField("exchange", "STRING", mode=_REQ, description="ccxt exchange id"),
    "symbol": bigquery.SchemaField("symbol", "STRING", mode=_REQ, description="Unified symbol, e.g. BTC/USDT:USDT"),
    "ingested_at": bigquery.SchemaField("ingested_at", "TIMESTAMP", mode=_REQ, description="System insertion time"),
}

FUNDING_SCHEMA = [
    bigquery.SchemaField("timestamp", "TIMESTAMP", mode=_REQ,
                         description="Funding time as the exchange reports it (UTC)"),
    _COMMON["exchange"], _COMMON["symbol"],
    bigquery.SchemaField("funding_rate", "FLOAT", mode=_REQ, description="Realized funding rate"),
    _COMMON["ingested_at"],
]

OPEN_INTEREST_SCHEMA = [
    bigquery.SchemaField("timestamp", "TIMESTAMP", mode=_REQ, description="Period open (UTC)"),
    _COMMON["exchange"], _COMMON["symbol"],
    bigquery.SchemaField("timeframe", "STRING", mode=_REQ, description="Open-interest period, e.g. 5m"),
    bigquery.SchemaField("open_interest_amount", "FLOAT", mode=_REQ, description="Contracts or base units"),
    bigquery.SchemaField("open_interest_value", "FLOAT", mode=_NULL, description="Quote value; NULL when not given"),
    _COMMON["ingested_at"],
]


def _funding_json(row: FundingRow) -> dict[str, Any]:
    return {"timestamp": iso_utc(row.timestamp), "exchange": row.exchange, "symbol": row.symbol,
            "funding_rate": row.funding_rate, "ingested_at": iso_utc(row.ingested_at)}


def _open_interest_json(row: OpenInterestRow) -> dict[str, Any]:
    return {"timestamp": iso_utc(row.timestamp), "exchange": row.exchange, "symbol": row.symbol,
            "timeframe": row.timeframe, "open_interest_amount": row.open_interest_amount,
            "open_interest_value": row.open_interest_value, "ingested_at": iso_utc(row.ingested_at)}


def point_insert_id(row: tuple) -> str:
    """The same for the same row values (a retry), new when the exchange changed them: every
    field but ``ingested_at``, the last one."""
    key = "|".join(repr(v) for v in (type(row).__name__, *row[:-1]))
    return hashlib.sha1(key.encode()).hexdigest()


@dataclass(frozen=True)
class BigQueryTable:
    spec: TableSpec
    schema: list[bigquery.SchemaField]
    to_json: Callable[[Any], dict[str, Any]]


POINT_BQ_TABLES = {
    FUNDING_RATES: BigQueryTable(POINT_TABLES[FUNDING_RATES], FUNDING_SCHEMA, _funding_json),
    OPEN_INTEREST: BigQueryTable(POINT_TABLES[OPEN_INTEREST], OPEN_INTEREST_SCHEMA, _open_interest_json),
}


def latest_view_sql(spec: TableSpec, table_path: str) -> str:
    partition = ", ".join(c for c in spec.key)
    return (f"SELECT {', '.join(spec.columns)} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {partition} "
            f"ORDER BY ingested_at DESC) AS rn FROM `{table_path}`) WHERE rn = 1")
