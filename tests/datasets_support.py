"""Reading the funding-rate and open-interest tables back, for the dataset e2e tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core.timefmt import epoch_ms, parse_iso_utc
from tests.e2e_support import BQ_DATASET, BQ_PROJECT, bigquery_client

FUNDING, OPEN_INTEREST = "market_data_funding_rates", "market_data_open_interest"


def _ms(value: Any) -> int:
    """Epoch ms of a stored time: ISO text (SQLite) or a datetime (BigQuery)."""
    return parse_iso_utc(value) if isinstance(value, str) else epoch_ms(value)


def sqlite_points(path: Path, table: str) -> dict[tuple, tuple]:
    """{(exchange, symbol, [timeframe,] ts): values} of a ``_latest`` view."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table}_latest")]
    return _index(rows)


def bigquery_points(fake: Any, table: str) -> dict[tuple, tuple]:
    client = bigquery_client(fake)
    try:
        query = f"SELECT * FROM `{BQ_PROJECT}.{BQ_DATASET}.{table}_latest`"
        rows = [dict(r.items()) for r in client.query(query).result()]
    finally:
        client.close()
    index = _index(rows)
    assert len(index) == len(rows), "the _latest view returned a key twice"
    return index


def _index(rows: list[dict]) -> dict[tuple, tuple]:
    out = {}
    for r in rows:
        ts = _ms(r["timestamp"])
        if "funding_rate" in r:
            out[(r["exchange"], r["symbol"], ts)] = (r["funding_rate"],)
        else:
            key = (r["exchange"], r["symbol"], r["timeframe"], ts)
            out[key] = (r["open_interest_amount"], r["open_interest_value"])
    return out


def funding_truth(exchange: str, symbol: str, start: int, end: int, now: int) -> dict[tuple, tuple]:
    from simulator.derivatives import truth_funding

    return {(exchange, symbol, ts): (rate,) for ts, rate in truth_funding(exchange, symbol, start, end, now)}


def open_interest_truth(exchange: str, symbol: str, period: str, period_ms: int, start: int, end: int,
                        now: int) -> dict[tuple, tuple]:
    from simulator.derivatives import truth_open_interest

    return {(exchange, symbol, period, ts): (a, v)
            for ts, a, v in truth_open_interest(exchange, symbol, period_ms, start, end, now)}
