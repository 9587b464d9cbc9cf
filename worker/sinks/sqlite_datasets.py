"""The funding-rate and open-interest tables in SQLite: schema, upserts, watermarks.

As for candles, the primary key is the row's key and the latest write wins, so each table is
its own latest view (the ``_latest`` view exists for queries written against BigQuery).
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Sequence

from core.series import SeriesKey
from core.timefmt import iso_utc
from worker.sinks.tables import POINT_TABLES, TableSpec

_TYPES = {"timestamp": "TEXT", "exchange": "TEXT", "symbol": "TEXT", "timeframe": "TEXT", "ingested_at": "TEXT"}


def schema_sql() -> str:
    parts = []
    for spec in POINT_TABLES.values():
        columns = ",\n    ".join(
            f"{c} {_TYPES.get(c, 'REAL')}{'' if c in spec.nullable else ' NOT NULL'}" for c in spec.columns)
        parts.append(f"CREATE TABLE IF NOT EXISTS {spec.name} (\n    {columns},\n"
                     f"    PRIMARY KEY ({', '.join(spec.key)})\n) WITHOUT ROWID;\n"
                     f"CREATE VIEW IF NOT EXISTS {spec.latest_view} AS SELECT {', '.join(spec.columns)} "
                     f"FROM {spec.name};")
    return "\n".join(parts)


def upsert_sql(spec: TableSpec) -> str:
    updated = [c for c in spec.columns if c not in spec.key]
    return (f"INSERT INTO {spec.name} ({', '.join(spec.columns)}) VALUES ({', '.join('?' * len(spec.columns))}) "
            f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in updated))


def params(rows: Sequence[tuple]) -> list[tuple]:
    """Rows as SQLite parameters: the first field (timestamp) and the last (ingested_at) as text."""
    return [(iso_utc(r[0]), *r[1:-1], iso_utc(r[-1])) for r in rows]


def write(conn: sqlite3.Connection, dataset: str, rows: Sequence[tuple]) -> None:
    """Within the caller's transaction."""
    conn.executemany(upsert_sql(POINT_TABLES[dataset]), params(rows))


def last_timestamps_sql(table: str, by_period: bool, exchanges: int) -> str:
    """The newest time per (exchange, symbol, period) of a table; the period is '' where the
    table has no timeframe column."""
    period = "timeframe" if by_period else "''"
    return (f"SELECT exchange, symbol, {period}, MAX(timestamp) FROM {table} "
            f"WHERE exchange IN ({', '.join('?' * exchanges)}) GROUP BY exchange, symbol, {period}")


def stored_sql(spec: TableSpec) -> str:
    period = " AND timeframe = ?" if spec.has_timeframe else ""
    return (f"SELECT timestamp FROM {spec.name} WHERE exchange = ? AND symbol = ?{period} "
            "AND timestamp >= ? AND timestamp < ? ORDER BY timestamp")


def stored_args(series: SeriesKey, start: str, end: str) -> tuple:
    period = (series.timeframe,) if POINT_TABLES[series.dataset].has_timeframe else ()
    return (series.exchange, series.symbol, *period, start, end)


def by_dataset(series: Iterable[SeriesKey]) -> dict[str, set[SeriesKey]]:
    grouped: dict[str, set[SeriesKey]] = {}
    for s in series:
        grouped.setdefault(s.dataset, set()).add(s)
    return grouped
