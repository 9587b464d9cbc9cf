"""The supervisor's decisions, with processes replaced at the multiprocessing boundary."""

from __future__ import annotations

import queue

import pytest

from core import exit_codes
from core.config import AppConfig
from core.protocol import Envelope, Heartbeat, SeriesDone, SeriesStatus, WorkerState
from supervisor.arbiter import Arbiter
from supervisor.restarts import RestartBackoff

BACKOFF, DONE, FAILED, RUNNING = (WorkerState.BACKOFF, WorkerState.DONE, WorkerState.FAILED,
                                  WorkerState.RUNNING)


def test_backoff_doubles_from_one_second_to_five_minutes() -> None:
    backoff = RestartBackoff()
    delays = [backoff.after_crash(ran_for_s=0.5) for _ in range(12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_backoff_resets_after_ten_healthy_minutes() -> None:
    backoff = RestartBackoff()
    for _ in range(5):
        backoff.after_crash(ran_for_s=1)
    assert backoff.after_crash(ran_for_s=599) == 32
    assert backoff.after_crash(ran_for_s=600) == 1
    assert backoff.after_crash(ran_for_s=3) == 2


class FakeProcess:
    """Stands in for multiprocessing.Process: the test decides when it exits and how."""

    started: list[FakeProcess] = []
    next_pid = 1000

    def __init__(self, target=None, name=None, args=(), daemon=None) -> None:
        self.args, self.exitcode, self.terminated = args, None, False
        FakeProcess.next_pid += 1
        self.pid = FakeProcess.next_pid

    def start(self) -> None:
        FakeProcess.started.append(self)

    def is_alive(self) -> bool:
        return self.exitcode is None

    def terminate(self) -> None:
        self.terminated = True
        self.exitcode = 0

    def join(self, timeout=None) -> None:
        pass


class FakeQueue(queue.Queue):
    def close(self) -> None:
        pass

    def cancel_join_thread(self) -> None:
        pass


class FakeContext:
    Process = FakeProcess
    Queue = FakeQueue


@pytest.fixture
def arbiter_factory():
    FakeProcess.started = []
    clock = {"now": 1000.0}

    def make(mode: str = "live", budget: int = 3) -> tuple[Arbiter, dict]:
        config = AppConfig.model_validate({
            "settings": {"update_interval_seconds": 10, "history_restart_budget": budget},
            "exchanges": {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}],
                          "kraken": [{"symbol": "BTC/USD", "timeframes": ["1m"]}]}})
        arbiter = Arbiter(config, mode=mode, exchanges=["binance", "kraken"], ctx=FakeContext,
                          log_queue=queue.Queue(), start_ms=0 if mode == "history" else None,
                          end_ms=60_000 if mode == "history" else None, clock=lambda: clock["now"])
        for worker in arbiter.workers.values():
            arbiter.spawn_worker(worker)
        return arbiter, clock
    yield make
    for proc in FakeProcess.started:
        proc.exitcode = proc.exitcode if proc.exitcode is not None else 0


def crash(arbiter: Arbiter, exchange: str, code: int = -9) -> None:
    arbiter.workers[exchange].process.exitcode = code
    arbiter.reap_workers()


def test_a_crashed_worker_is_restarted_after_its_backoff_and_the_other_untouched(arbiter_factory) -> None:
    arbiter, clock = arbiter_factory()
    kraken_process = arbiter.workers["kraken"].process
    delays = []
    for _ in range(4):
        crash(arbiter, "binance")
        worker = arbiter.workers["binance"]
        assert worker.state == BACKOFF
        delays.append(worker.next_start_at - clock["now"])
        clock["now"] += delays[-1] - 0.01
        arbiter.spawn_due_workers()
        assert worker.state == BACKOFF  # not a moment early
        clock["now"] += 0.01
        arbiter.spawn_due_workers()
        assert worker.state == RUNNING
        clock["now"] += 5  # crashes again shortly after start
    assert delays == [1, 2, 4, 8]
    assert arbiter.workers["kraken"].process is kraken_process and not kraken_process.terminated
    assert arbiter.workers["binance"].restarts == 4


def test_backoff_resets_after_a_healthy_run(arbiter_factory) -> None:
    arbiter, clock = arbiter_factory()
    for _ in range(3):
        crash(arbiter, "binance")
        clock["now"] = arbiter.workers["binance"].next_start_at
        arbiter.spawn_due_workers()
    clock["now"] += 601
    crash(arbiter, "binance")
    assert arbiter.workers["binance"].next_start_at - clock["now"] == 1


def test_bad_config_exit_code_is_not_restarted(arbiter_factory) -> None:
    arbiter, clock = arbiter_factory()
    crash(arbiter, "binance", exit_codes.BAD_CONFIG)
    clock["now"] += 3600
    arbiter.spawn_due_workers()
    assert arbiter.workers["binance"].state == FAILED
    assert len(FakeProcess.started) == 2
    assert arbiter.exit_code() == 0  # kraken still collecting
    crash(arbiter, "kraken", exit_codes.BAD_CONFIG)
    assert arbiter.exit_code() == 2


def test_a_silent_worker_is_killed(arbiter_factory, monkeypatch) -> None:
    arbiter, clock = arbiter_factory()
    killed = []
    monkeypatch.setattr(type(arbiter.workers["binance"]), "kill_tree",
                        lambda self: killed.append(self.exchange_id))
    clock["now"] += 49  # timeout: 5 intervals of 10 s
    kraken = arbiter.workers["kraken"]
    kraken.on_message(Envelope("kraken", kraken.pid, clock["now"], Heartbeat()), clock["now"])
    clock["now"] += 2
    arbiter.check_workers()
    assert killed == ["binance"]


def test_history_worker_restarts_within_budget_then_fails(arbiter_factory) -> None:
    arbiter, clock = arbiter_factory(mode="history", budget=2)
    crash(arbiter, "kraken", exit_codes.OK)
    assert arbiter.workers["kraken"].state == DONE
    for expected_state in (BACKOFF, BACKOFF, FAILED):
        crash(arbiter, "binance")
        assert arbiter.workers["binance"].state == expected_state
        if expected_state == BACKOFF:
            clock["now"] = arbiter.workers["binance"].next_start_at
            arbiter.spawn_due_workers()
    assert arbiter.finished()


def test_history_restart_skips_series_already_finished(arbiter_factory) -> None:
    arbiter, clock = arbiter_factory(mode="history")
    worker = arbiter.workers["binance"]
    done = SeriesDone(("binance", "BTC/USDT", "1m"), SeriesStatus.COMPLETE, covered_until=60_000)
    worker.on_message(Envelope("binance", worker.pid, clock["now"], done), clock["now"])
    crash(arbiter, "binance")
    clock["now"] = worker.next_start_at
    arbiter.spawn_due_workers()
    spec = FakeProcess.started[-1].args[1]  # (entry point, spec, channel)
    assert spec.resume_from == {("binance", "BTC/USDT", "1m"): 60_000}


def test_history_exit_codes(arbiter_factory) -> None:
    arbiter, clock = arbiter_factory(mode="history")
    for name, symbol, status in (("binance", "BTC/USDT", "complete"), ("kraken", "BTC/USD", "partial_unavailable")):
        worker = arbiter.workers[name]
        done = SeriesDone((name, symbol, "1m"), SeriesStatus(status), covered_until=60_000,
                          unavailable=[(0, 60_000)] if name == "kraken" else [])
        worker.on_message(Envelope(name, worker.pid, clock["now"], done), clock["now"])
        crash(arbiter, name, exit_codes.OK)
    assert arbiter.exit_code() == 0
    worker = arbiter.workers["kraken"]
    worker.series_results[("kraken", "BTC/USD", "1m")] = SeriesDone(
        ("kraken", "BTC/USD", "1m"), SeriesStatus.FAILED, covered_until=0, error="boom")
    assert arbiter.exit_code() == 1
