"""Hive-partitioned files, one per partition, replaced whole so a rerun never duplicates rows.

A partition is written to a staging directory under ``--out`` (same file system) and moved
over the old file with one ``os.replace``: a reader sees the old file or the new one, never
half of either. A day only partly inside the range keeps the old file's rows outside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from worker.export_datasets import ExportDataset

DAY_MS = 86_400_000
PART_STEM = "part-0"
_SAFE = "-_.~"


def path_value(key: str, value: str) -> str:
    """A partition value as a path segment: symbols ``/`` -> ``-`` and ``:`` -> ``_``."""
    if key == "symbol":
        value = value.replace("/", "-").replace(":", "_")
    return quote(value, safe=_SAFE)


def partition_dir(dataset: ExportDataset, values: tuple[str, ...], day: str) -> Path:
    levels = [f"{key}={path_value(key, value)}" for key, value in zip(dataset.partition_by, values, strict=True)]
    return Path(dataset.name, *levels, f"date={day}")


class PartitionWriter:
    def __init__(self, out_dir: str, fmt: str, start_ms: int, end_ms: int) -> None:
        self.out = Path(out_dir)
        self.fmt = fmt
        self.start_ms, self.end_ms = start_ms, end_ms
        self.staging = self.out / f".export-staging-{os.getpid()}"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.files = 0

    def write(self, dataset: ExportDataset, values: tuple[str, ...], day: str, rows: list[tuple]) -> None:
        table = to_table(dataset.schema, rows)
        relative = partition_dir(dataset, values, day)
        final_dir = self.out / relative
        if not self._day_inside_range(day):
            table = self._with_rows_outside_range(table, final_dir, dataset.schema)
        staged = self.staging / f"{self.files}.{self.fmt}"
        if self.fmt == "csv":
            pacsv.write_csv(table, staged)
        else:
            pq.write_table(table, staged, compression="zstd")
        final_dir.mkdir(parents=True, exist_ok=True)
        target = final_dir / f"{PART_STEM}.{self.fmt}"
        os.replace(staged, target)
        for other in final_dir.glob(f"{PART_STEM}.*"):   # the file of a run in the other format
            if other != target:
                other.unlink(missing_ok=True)
        self.files += 1

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def _day_inside_range(self, day: str) -> bool:
        day_start = int(pc.strptime(pa.scalar(day), format="%Y-%m-%d", unit="ms").value)
        return self.start_ms <= day_start and day_start + DAY_MS <= self.end_ms

    def _with_rows_outside_range(self, table: pa.Table, final_dir: Path, schema: pa.Schema) -> pa.Table:
        old = read_partition(final_dir, schema)
        if old is None:
            return table
        ts = old.column("timestamp")
        start = pa.scalar(self.start_ms * 1000, type=schema.field("timestamp").type)
        end = pa.scalar(self.end_ms * 1000, type=schema.field("timestamp").type)
        kept = old.filter(pc.or_(pc.less(ts, start), pc.greater_equal(ts, end)))
        merged = pa.concat_tables([kept, table])
        return merged.sort_by("timestamp")


def to_table(schema: pa.Schema, rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values).cast(field.type))   # ISO text or datetimes
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def read_partition(directory: Path, schema: pa.Schema) -> pa.Table | None:
    """The rows an earlier run wrote into a partition, in either format."""
    parquet, csv = directory / f"{PART_STEM}.parquet", directory / f"{PART_STEM}.csv"
    if parquet.exists():
        return pq.read_table(parquet, schema=schema)
    if csv.exists():
        return pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(column_types=schema)).select(schema.names)
    return None
