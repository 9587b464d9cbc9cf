"""The tables of the datasets beyond candles (design.md section 9), as both stores name them.

Each table keeps every version of a row (BigQuery) or the latest (SQLite, by primary key); its
``_latest`` view returns one row per key, the latest ``ingested_at``.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.series import FUNDING_RATES, OPEN_INTEREST


@dataclass(frozen=True)
class TableSpec:
    dataset: str
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]             # the row's identity; the latest ingested_at wins
    nullable: frozenset[str] = frozenset()

    @property
    def latest_view(self) -> str:
        return f"{self.name}_latest"

    @property
    def has_timeframe(self) -> bool:
        return "timeframe" in self.columns

    def values(self) -> tuple[str, ...]:
        """The columns that are neither key nor ingestion time."""
        return tuple(c for c in self.columns if c not in self.key and c != "ingested_at")


FUNDING_TABLE = TableSpec(
    FUNDING_RATES, "market_data_funding_rates",
    ("timestamp", "exchange", "symbol", "funding_rate", "ingested_at"),
    ("exchange", "symbol", "timestamp"))

OPEN_INTEREST_TABLE = TableSpec(
    OPEN_INTEREST, "market_data_open_interest",
    ("timestamp", "exchange", "symbol", "timeframe", "open_interest_amount", "open_interest_value",
     "ingested_at"),
    ("exchange", "symbol", "timeframe", "timestamp"),
    nullable=frozenset({"open_interest_value"}))

POINT_TABLES: dict[str, TableSpec] = {FUNDING_RATES: FUNDING_TABLE, OPEN_INTEREST: OPEN_INTEREST_TABLE}
