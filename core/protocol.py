"""What the supervisor and a worker process say to each other.

The supervisor hands a worker a :class:`WorkerSpec`; the worker answers with the typed
messages below, through its channel. Everything here pickles across ``multiprocessing``
and imports nothing heavy: the supervisor loads this module, never ccxt or a store client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Union

from core.config import ExchangeConfig, Settings, StorageConfig
from core.shards import Shard
from core.telemetry import HistoryProgress, RequestStats, SeriesFreshness


class Mode(StrEnum):
    LIVE = "live"
    HISTORY = "history"
    AUDIT = "audit"
    PLAN = "plan"       # resolve the universe and the shard's series, report them, exit


class WorkerState(StrEnum):
    """Where a worker process stands, as the supervisor tracks it."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"


class SeriesStatus(StrEnum):
    """How a series' HISTORY run ended."""

    COMPLETE = "complete"
    PARTIAL_UNAVAILABLE = "partial_unavailable"   # covered; the rest the exchange no longer serves
    FAILED = "failed"
    SKIPPED = "skipped"                           # the exchange does not offer it

    @property
    def covered(self) -> bool:
        return self in (SeriesStatus.COMPLETE, SeriesStatus.PARTIAL_UNAVAILABLE)


class GapKind(StrEnum):
    """Why bars are missing from the store (AUDIT)."""

    REPAIRABLE = "repairable"     # the exchange serves them now: a failure of ours
    NO_TRADES = "no_trades"       # the exchange has no bar there either
    UNAVAILABLE = "unavailable"   # the exchange no longer serves that far back


SeriesId = tuple[str, ...]   # (exchange, symbol, timeframe[, dataset]): a series key as plain data


@dataclass(frozen=True)
class WorkerSpec:
    exchange_id: str
    exchange: ExchangeConfig
    settings: Settings
    storage: StorageConfig
    mode: Mode
    start_ms: int | None = None                 # HISTORY / AUDIT range [start, end)
    end_ms: int | None = None
    # HISTORY: per series, where a previous attempt stood.
    resume_from: dict[SeriesId, int] = field(default_factory=dict)
    repair: bool = False                        # AUDIT: fill the gaps the exchange can serve
    # --shard I/N: names the worker's state files; with shard_by series it also picks the
    # (exchange, symbol) pairs this worker collects.
    shard: Shard | None = None


@dataclass(frozen=True)
class Heartbeat:
    """The worker's event loop still turns; its counters since it started."""

    rows_written: int = 0
    rows_rejected: int = 0
    last_success: float | None = None
    requests: RequestStats | None = None        # HTTP requests to the exchange
    spool_rows: int = 0                         # LIVE: rows waiting for the store
    history: HistoryProgress | None = None      # HISTORY: bars done of bars to do
    # LIVE: request time the series need per interval at the exchange's pace / the interval.
    rate_budget_ratio: float | None = None


@dataclass(frozen=True)
class SeriesPlan:
    """The series this worker collects: after resolving its universe and shard, and again
    whenever a LIVE refresh changes them."""

    series: list[SeriesId] = field(default_factory=list)
    skipped: list[tuple[SeriesId, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SeriesDone:
    """A series' HISTORY run ended."""

    series: SeriesId
    status: SeriesStatus
    covered_until: int
    candles: int = 0
    unavailable: list[tuple[int, int]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class GapReport:
    start_ms: int
    end_ms: int            # exclusive
    missing: int
    kind: GapKind
    exchange_bars: int = 0


@dataclass(frozen=True)
class AuditDone:
    """A series' AUDIT ended: what the grid expects, what is stored, the gaps by kind."""

    series: SeriesId
    expected: int
    stored: int
    repairable: int
    repaired: int
    gaps: list[GapReport] = field(default_factory=list)
    error: str | None = None
    # --repair: the gaps left once the repairable bars were written (None: no repair asked).
    after_repair: list[GapReport] | None = None
    # The grid the rows were expected on, when the series has no timeframe of its own (funding
    # rates: the symbol's funding interval, e.g. "8h"); None: the series' timeframe.
    grid: str | None = None


Message = Union[Heartbeat, SeriesPlan, SeriesDone, AuditDone, SeriesFreshness]


@dataclass(frozen=True)
class Envelope:
    """A message with who sent it: a late message from an earlier run of a worker is dropped."""

    exchange: str
    pid: int
    sent_at: float
    message: Message
