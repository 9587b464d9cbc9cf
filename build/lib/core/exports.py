"""What ``--mode export`` asks of the export process: plain data, pickled across processes."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import StorageConfig

EXPORT_FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class ExportRequest:
    storage: StorageConfig
    start_ms: int                        # [start, end) on the rows' timestamp
    end_ms: int
    out_dir: str
    format: str = "parquet"              # one of EXPORT_FORMATS
    exchanges: tuple[str, ...] = ()      # empty: every exchange the store holds
    log_level: str = "INFO"
