"""Shard ownership: stable, exclusive, and the same in every process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.shards import Shard, ShardError, owner, series_key, state_file_name

KEYS = [series_key(ex, f"C{i}/USDT") for ex in ("binance", "okx", "kraken") for i in range(300)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 13, 32])
def test_every_key_has_exactly_one_owner(count: int) -> None:
    for key in KEYS:
        owners = [i for i in range(count) if Shard(i, count).owns(key)]
        assert owners == [owner(key, count)]


def test_load_spreads_evenly() -> None:
    counts = [0, 0, 0]
    for key in KEYS:
        counts[owner(key, 3)] += 1
    assert all(abs(c - len(KEYS) / 3) < len(KEYS) * 0.08 for c in counts), counts


def test_adding_a_shard_moves_keys_only_to_the_new_one() -> None:
    """Rendezvous hashing: going from N to N+1 shards, a key either stays or moves to N."""
    for key in KEYS:
        before, after = owner(key, 4), owner(key, 5)
        assert after in (before, 4)


def test_same_answer_in_another_process_with_another_hash_seed() -> None:
    code = ("from core.shards import owner, series_key;"
            "print([owner(series_key('binance', f'C{i}/USDT'), 7) for i in range(50)])")
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."}).stdout for seed in ("1", "2")}
    assert out == {str([owner(series_key("binance", f"C{i}/USDT"), 7) for i in range(50)]) + "\n"}


@pytest.mark.parametrize("text", ["", "1", "a/3", "3/3", "-1/3", "0/0", "1/2/3", "1 of 3"])
def test_malformed_or_out_of_range(text: str) -> None:
    with pytest.raises(ShardError):
        Shard.parse(text)


def test_parse_and_file_names() -> None:
    shard = Shard.parse(" 1/3 ")
    assert shard == Shard(1, 3) and str(shard) == "1/3"
    assert state_file_name("spool", "binance", shard, ".jsonl") == "spool-binance-shard1of3.jsonl"
    assert state_file_name("spool", "binance", None, ".jsonl") == "spool-binance.jsonl"
