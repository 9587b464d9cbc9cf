"""LIVE rows survive a store outage and a worker restart; refused rows go to dead letters."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from core.config import ExchangeConfig, Settings
from core.series import OhlcvRow
from tests.mock_exchange import MINUTE, candle, client_for, mock_exchange
from worker.errors import SinkRejected, SinkUnavailable
from worker.live import LiveCollector
from worker.session import ExchangeSession
from worker.sinks.base import WriteResult
from worker.spool import DeadLetters, Spool

T0 = 1_700_000_040_000


class FlakySink:
    """Fails while ``down`` is set; remembers every row it accepted, in order."""

    def __init__(self) -> None:
        self.down = False
        self.refuse = False
        self.stored: list[OhlcvRow] = []

    def ensure(self) -> None: ...
    def close(self) -> None: ...
    def last_timestamps(self, series):
        return {}

    def write(self, rows):
        if self.down:
            raise SinkUnavailable("503 backendError")
        if self.refuse:
            raise SinkRejected("400 invalid schema")
        self.stored.extend(rows)
        return WriteResult(written=len(rows))


def make_worker(tmp_path: Path, sink: FlakySink, clock: dict, max_rows: int = 1000) -> LiveCollector:
    exchange = mock_exchange(
        ohlcv=lambda *a: [candle(int(clock["now"] * 1000) // MINUTE * MINUTE - MINUTE, clock["now"] % 97),
                          candle(int(clock["now"] * 1000) // MINUTE * MINUTE, clock["now"] % 89)],
        server_time_ms=lambda: int(clock["now"] * 1000))
    session = ExchangeSession("mockex", ExchangeConfig(symbols=[{"symbol": "BTC/USDT", "timeframes": ["1m"]}]),
                              Settings(), sink, client=client_for(exchange, clock=lambda: clock["now"]),
                              clock=lambda: clock["now"], dead_letters=DeadLetters(tmp_path / "dead.jsonl"))
    return LiveCollector(session, Spool(tmp_path / "spool.jsonl", max_rows))


def run_cycles(worker: LiveCollector, clock: dict, times: list[float], start: bool = True) -> None:
    async def go():
        if start:
            await worker.session.open()
        for now in times:
            clock["now"] = now
            await worker.cycle()
    asyncio.run(go())


def test_rows_are_spooled_during_an_outage_and_delivered_in_order(tmp_path: Path) -> None:
    sink, clock = FlakySink(), {"now": T0 / 1000 + 5}
    worker = make_worker(tmp_path, sink, clock)
    sink.down = True
    run_cycles(worker, clock, [T0 / 1000 + 5 + 60 * k for k in range(3)])
    assert sink.stored == [] and len(worker.spool) == 6
    assert len((tmp_path / "spool.jsonl").read_text().splitlines()) == 6
    sink.down = False
    run_cycles(worker, clock, [T0 / 1000 + 5 + 180], start=False)
    assert len(worker.spool) == 0 and not (tmp_path / "spool.jsonl").exists()
    timestamps = [r.timestamp for r in sink.stored]
    assert timestamps[:6] == [T0 - MINUTE, T0, T0, T0 + MINUTE, T0 + MINUTE, T0 + 2 * MINUTE]
    assert timestamps[6:] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE]


def test_spooled_rows_survive_a_restart(tmp_path: Path) -> None:
    sink, clock = FlakySink(), {"now": T0 / 1000 + 5}
    sink.down = True
    run_cycles(make_worker(tmp_path, sink, clock), clock, [T0 / 1000 + 5])
    sink.down = False
    restarted = make_worker(tmp_path, sink, clock)  # a new process reading the same volume
    assert len(restarted.spool) == 2
    run_cycles(restarted, clock, [T0 / 1000 + 65])
    assert [r.timestamp for r in sink.stored][:2] == [T0 - MINUTE, T0]


def test_a_full_spool_hands_its_series_to_gap_repair(tmp_path: Path) -> None:
    sink, clock = FlakySink(), {"now": T0 / 1000 + 5}
    worker = make_worker(tmp_path, sink, clock, max_rows=3)
    sink.down = True
    run_cycles(worker, clock, [T0 / 1000 + 5, T0 / 1000 + 65])
    assert len(worker.spool) == 3
    assert {str(s) for s in worker._needs_repair} == {"mockex:BTC/USDT:1m"}


def test_refused_rows_go_to_dead_letters_not_to_retry(tmp_path: Path) -> None:
    sink, clock = FlakySink(), {"now": T0 / 1000 + 5}
    worker = make_worker(tmp_path, sink, clock)
    sink.refuse = True
    run_cycles(worker, clock, [T0 / 1000 + 5])
    assert len(worker.spool) == 0 and worker.stats.rows_rejected == 2
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [l["row"]["timestamp"] for l in letters] == [T0 - MINUTE, T0]
    assert "400 invalid schema" in letters[0]["error"]


def test_a_spool_whose_file_cannot_be_written_keeps_rows_in_memory_and_writes_them_later(tmp_path) -> None:
    """A full or read-only disk under state_dir: rows stay in memory, within the bound, and
    the whole spool reaches the file once it can be written."""
    from core.series import OhlcvRow as Row
    from worker.spool import Spool as DiskSpool

    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    spool = DiskSpool(blocker / "spool.jsonl", max_rows=3)
    rows = [Row(60_000 * i, "binance", "BTC/USDT", "1m", 1.0, 1.0, 1.0, 1.0, 1.0, 0) for i in range(4)]
    assert spool.append(rows[:2]) == [] and not spool.on_disk
    assert spool.append(rows[2:]) == rows[3:]                      # bounded as ever
    assert len(spool) == 3
    blocker.unlink()                                               # space again
    assert spool.append([]) == [] and not spool.on_disk            # nothing new: nothing written
    spool.max_rows = 4
    assert spool.append(rows[3:]) == [] and spool.on_disk
    assert DiskSpool(blocker / "spool.jsonl", max_rows=4).rows() == rows
