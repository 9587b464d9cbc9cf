"""Shards: which process owns which exchange or (exchange, symbol) pair.

Several supervisors (``--shard I/N``) split one config without talking to each other, so
ownership must be a pure function of the key and N, the same in every process, host and
Python version. Rendezvous (highest-random-weight) hashing gives that: every shard scores a
key with blake2b and the highest score owns it. Python's ``hash()`` is salted per process
and would give each shard a different answer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

ShardBy = Literal["exchange", "series"]

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """A ``--shard`` / ``SHARD`` value that is malformed or out of range."""


@dataclass(frozen=True)
class Shard:
    """This process is shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD.match(text or "")
        if not match:
            raise ShardError(f"{text!r} is not of the form I/N (0-based), e.g. 0/3")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1:
            raise ShardError(f"{text!r}: N must be at least 1")
        if index >= count:
            raise ShardError(f"{text!r}: I must be between 0 and N-1 ({count - 1})")
        return cls(index, count)

    @property
    def label(self) -> str:
        """The shard in a file name: ``shard1of3``."""
        return f"shard{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return owner(key, self.count) == self.index

    def owns_exchange(self, exchange_id: str) -> bool:
        return self.owns(exchange_key(exchange_id))

    def owns_symbol(self, exchange_id: str, symbol: str) -> bool:
        return self.owns(series_key(exchange_id, symbol))


def exchange_key(exchange_id: str) -> str:
    return exchange_id


def series_key(exchange_id: str, symbol: str) -> str:
    """Every timeframe and dataset of a symbol go to one shard: one market, one host's limit."""
    return f"{exchange_id}|{symbol}"


def _weight(key: str, shard: int) -> int:
    digest = hashlib.blake2b(f"{key}#{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, count: int) -> int:
    """The shard in ``range(count)`` that owns ``key``; ties (never seen in 64 bits) go low."""
    if count < 1:
        raise ShardError("the shard count must be at least 1")
    return max(range(count), key=lambda shard: (_weight(key, shard), -shard))


def state_file_name(stem: str, exchange_id: str, shard: Shard | None, suffix: str) -> str:
    """``spool-binance.jsonl`` unsharded, ``spool-binance-shard1of3.jsonl`` for shard 1 of 3."""
    tag = f"-{shard.label}" if shard is not None else ""
    return f"{stem}-{exchange_id}{tag}{suffix}"
