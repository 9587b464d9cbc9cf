"""``--mode export`` in its own process: the store's latest rows in a range, as files.

The supervisor starts this by module path (it never holds a store client). Rows stream from
the store in partition order, and each partition (series and UTC day) is written as soon as
it is complete, so memory holds one partition whatever the range.
"""

from __future__ import annotations

import logging
import sys
import time
from itertools import groupby
from typing import Any

from tqdm import tqdm

from core import exit_codes
from core.exports import ExportRequest
from core.logsetup import configure_worker_logging
from core.timefmt import iso_utc
from worker.errors import CollectorError
from worker.export_datasets import DATASETS, ExportDataset
from worker.export_files import PartitionWriter
from worker.export_readers import open_reader

log = logging.getLogger(__name__)


def export_main(request: ExportRequest, channel: Any) -> None:
    configure_worker_logging(channel, exchange=",".join(request.exchanges) or "*", mode="export",
                             level=request.log_level)
    try:
        code = export(request)
    except CollectorError as exc:
        log.error("cannot read the store: %s", exc, extra={"event": "export_failed", "error": str(exc)[:500]})
        code = exit_codes.TEMPORARY_FAILURE
    except OSError as exc:
        log.error("cannot write under %s: %s", request.out_dir, exc,
                  extra={"event": "export_failed", "error": str(exc)[:500]})
        code = exit_codes.TEMPORARY_FAILURE
    logging.shutdown()
    sys.exit(code)


def export(request: ExportRequest) -> int:
    started = time.monotonic()
    reader = open_reader(request.storage)
    writer = PartitionWriter(request.out_dir, request.format, request.start_ms, request.end_ms)
    totals = {"rows": 0, "files": 0}
    try:
        for dataset in DATASETS:
            rows, files = export_dataset(reader, writer, dataset, request)
            totals["rows"] += rows
            totals["files"] += files
    finally:
        writer.close()
        reader.close()
    log.info("exported %d rows into %d files under %s", totals["rows"], totals["files"], request.out_dir,
             extra={"event": "export_complete", **totals, "out": request.out_dir, "format": request.format,
                    "start": iso_utc(request.start_ms), "end": iso_utc(request.end_ms),
                    "duration_s": round(time.monotonic() - started, 2)})
    return exit_codes.OK


def export_dataset(reader: Any, writer: PartitionWriter, dataset: ExportDataset,
                   request: ExportRequest) -> tuple[int, int]:
    latest = reader.read(dataset, request.start_ms, request.end_ms, request.exchanges)
    if latest is None:
        log.debug("the store has no %s view; nothing to export", dataset.latest_view,
                  extra={"event": "export_dataset_absent", "dataset": dataset.name})
        return 0, 0
    names = dataset.schema.names
    levels = [names.index(key) for key in dataset.partition_by]
    ts = names.index("timestamp")
    day_of = latest.day_of

    def partition(row: tuple) -> tuple[tuple[str, ...], str]:
        return tuple(row[i] for i in levels), day_of(row[ts])

    rows = files = 0
    # The bar draws only on a terminal; log lines carry the figures either way.
    with tqdm(total=latest.total, unit="rows", unit_scale=True, desc=f"export {dataset.name}",
              disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        try:
            for (values, day), group in groupby(latest.rows, key=partition):
                batch = list(group)
                writer.write(dataset, values, day, batch)
                rows, files = rows + len(batch), files + 1
                bar.update(len(batch))
        finally:
            latest.close()
    log.info("%s: %d rows in %d files", dataset.name, rows, files,
             extra={"event": "export_dataset_complete", "dataset": dataset.name, "rows": rows, "files": files})
    return rows, files
