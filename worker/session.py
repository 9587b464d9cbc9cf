"""What every mode of a worker shares: the exchange, its usable series, the store write,
the counters and the heartbeat.

LIVE (:mod:`worker.live`), HISTORY (:mod:`worker.history`) and AUDIT (:mod:`worker.audit`)
each drive one session. Exchange and store trouble is logged and counted where it happens and
never escapes a LIVE cycle: a LIVE worker only stops when it is told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from core.config import ExchangeConfig, Settings
from core.datasets import configured_series
from core.protocol import Heartbeat, Message, SeriesPlan
from core.series import Row, SeriesKey
from core.shards import Shard
from core.telemetry import HistoryProgress
from worker.candles import ParsedBatch, log_rejections
from worker.datasets import dataset_for
from worker.errors import SinkRejected
from worker.exchange import ExchangeClient
from worker.sinks.base import Sink
from worker.spool import DeadLetters
from worker.universe import select_symbols

log = logging.getLogger(__name__)

Report = Callable[[Message], None]


@dataclass
class WorkerStats:
    rows_written: int = 0
    rows_rejected: int = 0
    cycles: int = 0
    cycle_errors: int = 0
    last_success: float | None = None
    spool_rows: int = 0
    rate_budget_ratio: float | None = None

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.rows_written, self.rows_rejected, self.last_success, spool_rows=self.spool_rows,
                         rate_budget_ratio=self.rate_budget_ratio)


def series_extra(series: SeriesKey, event: str, **fields: Any) -> dict[str, Any]:
    """``extra`` of a log record about one series."""
    return {"event": event, "symbol": series.symbol, "timeframe": series.timeframe,
            "dataset": series.dataset, **fields}


class ExchangeSession:
    def __init__(
        self,
        exchange_id: str,
        exchange: ExchangeConfig,
        settings: Settings,
        sink: Sink,
        *,
        client: ExchangeClient | None = None,
        report: Report | None = None,
        clock: Callable[[], float] = time.time,
        dead_letters: DeadLetters | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.exchange = exchange
        self.settings = settings
        # Only a config split by series narrows the symbols; split by exchange, the
        # supervisor already started only the exchanges this shard owns.
        self.series_shard = shard if settings.shard_by == "series" else None
        self.sink = sink
        self.client = client or ExchangeClient(
            exchange_id, exchange.ccxt, max_concurrent_requests=settings.max_concurrent_requests)
        self.configured = configured_series(exchange_id, exchange, [], self.series_shard)
        self.universe: list[str] = []   # the symbols the universe rule selected, by name
        self.series: list[SeriesKey] = []
        self.skipped: list[tuple[SeriesKey, str]] = []
        self.stats = WorkerStats()
        self.report = report or (lambda message: None)
        self.clock = clock
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters(None)
        self.stopping = False
        # HISTORY: where the run stands, sent with every heartbeat.
        self.history_progress: Callable[[], HistoryProgress] | None = None

    async def open(self) -> None:
        """Open the exchange, keep the series it offers, prepare the store."""
        await self.client.open()
        # Bars close on the exchange's clock. Reading it while connecting spares the first
        # cycle or backfill a round trip; it is read again every 10 minutes.
        await self.client.exchange_now_ms()
        if self.exchange.universe is not None:
            self.universe = await self.select_universe()
        self.series, self.skipped = self.usable_series(log_skips=True)
        self.report_plan()
        await asyncio.to_thread(self.sink.ensure)
        log.info("%s ready: %d series, %d skipped", self.exchange_id, len(self.series),
                 len(self.skipped), extra={"event": "worker_ready", "series": len(self.series),
                                            "skipped": len(self.skipped)})

    async def select_universe(self) -> list[str]:
        """The symbols the universe rule selects now: markets as loaded, one ticker request."""
        rules = self.exchange.universe
        assert rules is not None
        # Without a rank or a floor the volumes decide nothing: spare the (heavy) request.
        needs_volumes = rules.top is not None or rules.min_quote_volume > 0
        tickers = await self.client.fetch_tickers(rules.type) if needs_volumes else {}
        symbols = select_symbols(rules, self.client.markets(), tickers)
        if symbols:
            log.info("universe of %s: %d symbols", self.exchange_id, len(symbols),
                     extra={"event": "universe_selected", "count": len(symbols), "symbols": symbols[:500]})
        else:
            log.warning("the universe of %s selects no symbol (quote %s, type %s)", self.exchange_id,
                        ", ".join(rules.quote), rules.type,
                        extra={"event": "universe_selected", "count": 0, "symbols": []})
        return symbols

    def usable_series(self, *, log_skips: bool) -> tuple[list[SeriesKey], list[tuple[SeriesKey, str]]]:
        """The owned series (explicit + universe) that the exchange offers, and the others."""
        self.configured = configured_series(self.exchange_id, self.exchange, self.universe, self.series_shard)
        usable, skipped = [], []
        for series in self.configured:
            reason = dataset_for(series).unsupported_reason(self.client, series)
            if reason:
                skipped.append((series, reason))
                if log_skips:
                    log.error("skipping %s: %s", series, reason,
                              extra=series_extra(series, "series_skipped", reason=reason))
            else:
                usable.append(series)
        return usable, skipped

    def report_plan(self) -> None:
        self.report(SeriesPlan([tuple(s) for s in self.series],
                               [(tuple(s), reason) for s, reason in self.skipped]))

    async def close(self) -> None:
        # Together: ccxt's close waits 250 ms for connections to shut down cleanly, and the
        # store's close waits for its writer process to finish.
        await asyncio.gather(self.client.close(), asyncio.to_thread(self.sink.close))

    def request_stop(self) -> None:
        """Finish the write in flight, start no new request, stop waiting to retry."""
        self.stopping = True
        self.client.abort_retries()

    def beat(self) -> None:
        meter = getattr(self.client, "requests", None)
        self.report(replace(self.stats.heartbeat(),
                            requests=meter.snapshot() if meter is not None else None,
                            history=self.history_progress() if self.history_progress else None))

    @contextlib.asynccontextmanager
    async def heartbeat(self) -> AsyncIterator[None]:
        """Tells the supervisor the event loop still turns while a long step runs.

        The beat comes several times within the supervisor's hung-worker timeout
        (heartbeat_timeout_intervals x update_interval_seconds), however short that is.
        """
        timeout_s = self.settings.heartbeat_timeout_intervals * self.settings.update_interval_seconds
        every_s = min(5.0, timeout_s / 4)

        async def beat_forever() -> None:
            while True:
                self.beat()
                await asyncio.sleep(every_s)

        task = asyncio.create_task(beat_forever())
        try:
            yield
        finally:
            task.cancel()

    async def write(self, rows: Sequence[Row]) -> None:
        """Store ``rows``; rows the store refuses go to the dead-letter file.

        Raises ``SinkUnavailable`` when the store cannot be reached: the caller decides
        whether to spool, retry or fail.
        """
        try:
            result = await asyncio.to_thread(self.sink.write, rows)
        except SinkRejected as exc:
            self.stats.rows_rejected += len(rows)
            self.dead_letters.add((row, str(exc)) for row in rows)
            log.error("store refused %d rows (kept in the dead-letter file): %s", len(rows), exc,
                      extra={"event": "sink_write_rejected", "rows": len(rows), "error": str(exc)[:300]})
            return
        self.stats.rows_written += result.written
        self.stats.rows_rejected += len(result.rejected)
        self.dead_letters.add(result.rejected)
        for row, reason in result.rejected[:20]:
            log.error("store rejected a row of %s: %s", row.series, reason,
                      extra=series_extra(row.series, "sink_row_rejected", reason=reason[:300]))
        log.debug("wrote %d rows", result.written, extra={"event": "sink_write_ok", "rows": result.written})

    def count_rejections(self, series: SeriesKey, batch: ParsedBatch) -> None:
        if batch.rejected:
            self.stats.rows_rejected += len(batch.rejected)
            log_rejections(series, batch)
