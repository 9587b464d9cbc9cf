"""The host's own failures end to end: a full disk, read-only paths, a reader on the SQLite file.

The disk is really full: the store and ``state_dir`` live on a small tmpfs mounted for the
test (root can mount one here and on CI; elsewhere the tests skip and say why), filled with
a filler file and freed by deleting it. Read-only means ``mount -o remount,ro``: root ignores
permission bits, not a read-only file system. A volume cannot be remounted read-only while
the store holds its files open for writing (EBUSY), so a store going read-only at run time is
not staged here (it reaches the worker as the same SinkUnavailable as any store outage); a
read-only ``state_dir`` at run time is, since nothing holds a file open there.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.e2e_support import (
    MINUTE_MS,
    Collector,
    closed_bars_diff,
    e2e_config,
    floor_to,
    iso_arg,
    last_cycle_starts,
    now_ms,
    series_list,
    sqlite_latest,
    truth_bars,
    values_of,
    wait_all_final,
)

BTC_1M = [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]


def mount_tmpfs(mount_point: Path, size: str) -> Path:
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {done.stderr.strip()}")
    return mount_point


def remount(mount_point: Path, flag: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{flag}", str(mount_point)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def volume(tmp_path):
    """A 3 MB tmpfs at tmp_path/vol, unmounted afterwards."""
    yield mount_tmpfs(tmp_path / "vol", "3m")
    subprocess.run(["umount", "-l", str(tmp_path / "vol")], capture_output=True)


@pytest.fixture
def state_volume(tmp_path):
    """A second small tmpfs, for ``state_dir`` alone."""
    yield mount_tmpfs(tmp_path / "state-vol", "1m")
    subprocess.run(["umount", "-l", str(tmp_path / "state-vol")], capture_output=True)


def fill(volume: Path, leave: int = 0) -> Path:
    """Write a filler file until the volume has no space left, then give back ``leave`` bytes."""
    filler = volume / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file keeps the chunk that did not fit and raises ENOSPC again
    # when the ``with`` block closes it.
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    if leave:
        with filler.open("r+b") as handle:
            handle.truncate(max(0, filler.stat().st_size - leave))
    return filler


def volume_config(tmp_path: Path, volume: Path, sim, exchanges, **settings) -> Path:
    storage = {"backend": "sqlite", "sqlite": {"path": str(volume / "md.sqlite")}}
    return e2e_config(tmp_path, sim, exchanges, storage=storage,
                      settings={"state_dir": str(volume / "state"), **settings})


def run_cli(config: Path, *args: str, timeout: float = 120) -> tuple[int, Collector]:
    collector = Collector(config, *args)
    try:
        return collector.wait(timeout), collector
    except subprocess.TimeoutExpired:
        collector.kill()
        raise


@pytest.mark.slow
def test_disk_full_in_live_is_one_episode_rows_wait_in_memory_and_nothing_is_lost(
        sim, tmp_path, collectors, volume) -> None:
    exchanges = {"binance": BTC_1M, "okx": BTC_1M}
    series = series_list(exchanges)
    config = volume_config(tmp_path, volume, sim, exchanges, update_interval_seconds=1)
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    read = lambda: sqlite_latest(volume / "md.sqlite")  # noqa: E731
    wait_all_final(read, series, 30, lag_ms=5_000)
    pids = collector.worker_pids()
    first = {key: min(bars) for key, bars in read().items()}

    filler = fill(volume)
    for exchange in exchanges:
        collector.wait_for(lambda exchange=exchange: collector.events("disk_full", exchange=exchange), 60,
                           f"{exchange}: disk_full")
    for exchange in exchanges:                                      # many cycles on a full disk
        collector.wait_for(lambda exchange=exchange: len(collector.events("sink_write_error", exchange=exchange))
                           >= 5, 90, f"{exchange}: five failed writes")
    for exchange in exchanges:
        assert len(collector.events("disk_full", exchange=exchange)) == 1          # once per episode
        failed = collector.events("sink_write_error", exchange=exchange)
        assert len(failed) >= 5 and not failed[-1]["spool_on_disk"], failed[-1]  # kept in memory
        assert [l["level"] for l in failed[1:]] == ["warning"] * (len(failed) - 1)
    assert collector.worker_pids() == pids and not collector.events("worker_crashed")
    cycles = len(collector.events("live_cycle_complete"))
    collector.wait_for(lambda: len(collector.events("live_cycle_complete")) > cycles, 30, "polling goes on")

    filler.unlink()
    for exchange in exchanges:
        collector.wait_for(lambda exchange=exchange: collector.events("store_recovered", exchange=exchange), 60,
                           f"{exchange}: store_recovered")
    recovered = collector.events("store_recovered")
    assert all(l["disk_full"] and l["rows"] > 0 for l in recovered), recovered
    wait_all_final(read, series, 60, lag_ms=5_000)
    assert collector.terminate() == 0
    store = read()
    assert not closed_bars_diff(store, series, last_cycle_starts(collector, exchanges))
    assert all(min(store[key]) == first[key] for key in series)     # one series, no gap

    code, audit = run_cli(config, "--mode", "audit", "--start", iso_arg(min(first.values())),
                          "--end", iso_arg(floor_to(now_ms(), MINUTE_MS)))
    assert code == 0, [l.get("message") for l in audit.events("audit_summary")] + [audit.stderr()]
    assert all(l["repairable"] == 0 and l["stored"] > 0 for l in audit.events("audit_summary"))


@pytest.mark.slow
def test_state_dir_read_only_at_run_time_keeps_the_spool_in_memory_and_loses_nothing(
        sim, tmp_path, collectors, volume, state_volume) -> None:
    # The state volume turns read-only while LIVE runs (nothing holds a file open there, so
    # the remount succeeds), then the store's disk fills: the spool cannot be written either.
    exchanges = {"binance": BTC_1M}
    series = series_list(exchanges)
    storage = {"backend": "sqlite", "sqlite": {"path": str(volume / "md.sqlite")}}
    config = e2e_config(tmp_path, sim, exchanges, storage=storage,
                        settings={"state_dir": str(state_volume / "state"), "update_interval_seconds": 1})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    read = lambda: sqlite_latest(volume / "md.sqlite")  # noqa: E731
    wait_all_final(read, series, 30, lag_ms=5_000)
    pids = collector.worker_pids()
    first = {key: min(bars) for key, bars in read().items()}

    remount(state_volume, "ro")
    filler = fill(volume)
    collector.wait_for(lambda: collector.events("spool_write_error"), 30, "the spool file refused")
    assert "Read-only file system" in collector.events("spool_write_error")[0]["error"]
    collector.wait_for(lambda: len(collector.events("sink_write_error")) >= 4, 30, "several failed cycles")
    assert not collector.events("sink_write_error")[-1]["spool_on_disk"]
    assert len(collector.events("spool_write_error")) == 1                  # once per episode
    assert collector.worker_pids() == pids and not collector.events("worker_crashed")

    filler.unlink()
    collector.wait_for(lambda: collector.events("store_recovered"), 20, "store_recovered")
    wait_all_final(read, series, 60, lag_ms=5_000)
    remount(state_volume, "rw")
    assert collector.terminate() == 0
    store = read()
    assert not closed_bars_diff(store, series, last_cycle_starts(collector, exchanges))
    assert all(min(store[key]) == first[key] for key in series)     # one series, no gap


@pytest.mark.slow
def test_disk_full_in_history_fails_its_series_with_a_summary_and_a_rerun_completes(
        sim, tmp_path, volume) -> None:
    config = volume_config(tmp_path, volume, sim, {"binance": BTC_1M})
    end = floor_to(now_ms(), MINUTE_MS) - 60 * MINUTE_MS
    # Room for the store to open (its -shm and -wal files), not for three days of bars: the
    # disk fills during the run.
    filler = fill(volume, leave=256 * 1024)
    start = end - 5 * 24 * 60 * MINUTE_MS
    code, history = run_cli(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end), timeout=180)
    assert code == 1
    (summary,) = history.events("history_summary")
    assert summary["status"] == "failed" and "full" in summary["reason"], summary
    assert not history.events("worker_crashed")

    filler.unlink()
    code, rerun = run_cli(config, "--mode", "history", "--start", iso_arg(start), "--end", iso_arg(end), timeout=180)
    assert code == 0, [l.get("message") for l in rerun.events("history_summary")]
    key = ("binance", "BTC/USDT", "1m")
    stored = {ts: v for ts, v in values_of(sqlite_latest(volume / "md.sqlite")[key]).items() if start <= ts < end}
    assert stored == truth_bars(key, start, end)


def test_unwritable_paths_at_boot_exit_3_with_one_line_naming_the_path(sim, tmp_path, volume) -> None:
    (volume / "state").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
    config = volume_config(tmp_path, volume, sim, {"binance": BTC_1M})
    code, collector = run_cli(config)
    stderr = collector.proc.stderr.read()
    assert code == 3
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    reason = "cannot write in the directory: Read-only file system"
    assert lines == [f"error: settings.state_dir {volume / 'state'}: {reason}",
                     f"error: storage.sqlite.path {volume / 'md.sqlite'}: {reason}"]
    failed = collector.events("boot_failed")
    assert [l["path"] for l in failed] == [str(volume / "state"), str(volume / "md.sqlite")]

    missing = tmp_path / "a-file"
    missing.write_text("")
    config = e2e_config(tmp_path, sim, {"binance": BTC_1M}, settings={"state_dir": str(missing / "state")})
    code, collector = run_cli(config)
    assert code == 3
    assert collector.proc.stderr.read().strip() == (
        f"error: settings.state_dir {missing / 'state'}: cannot create the directory: Not a directory")


def test_a_reader_holding_the_file_does_not_stop_writers_and_the_wal_shrinks_after(sim, tmp_path, collectors) -> None:
    exchanges = {"binance": BTC_1M}
    config = e2e_config(tmp_path, sim, exchanges, settings={"update_interval_seconds": 1})
    collector = Collector(config)
    collectors.append(collector)
    collector.wait_healthy(60)
    db, wal = tmp_path / "md.sqlite", tmp_path / "md.sqlite-wal"
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM market_data_ohlcv_latest").fetchone()   # holds a snapshot
    held_from = len(collector.events("live_cycle_complete"))
    # A backfill into the same file while the reader holds it: the WAL cannot be checkpointed
    # past the reader's snapshot and grows beyond 8 MB.
    end = floor_to(now_ms(), MINUTE_MS) - 60 * MINUTE_MS
    history_config = e2e_config(tmp_path, sim, {"binance": [{"symbol": s, "timeframes": ["1m"]} for s in
                                                            ("ETH/USDT", "SOL/USDT")]},
                                name="history.yaml", state="history-state")
    code, _ = run_cli(history_config, "--mode", "history", "--start", iso_arg(end - 40 * 24 * 60 * MINUTE_MS),
                      "--end", iso_arg(end), timeout=120)
    assert code == 0
    grown = wal.stat().st_size
    assert grown > 8 * 2**20, grown
    cycles = collector.events("live_cycle_complete")[held_from:]
    assert len(cycles) >= 3 and not collector.events("sink_write_error")           # writers carried on
    reader.rollback()
    reader.close()
    collector.wait_for(lambda: wal.stat().st_size < 1 * 2**20, 15, "the WAL truncated after the reader left")
    assert collector.terminate() == 0
