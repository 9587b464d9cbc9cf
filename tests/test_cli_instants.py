"""``--start`` and ``--end``: ISO-8601 instants read to the exact millisecond."""

from __future__ import annotations

import pytest

from supervisor.cli import UsageError, parse_instant


def test_an_instant_is_read_to_the_exact_millisecond() -> None:
    # 2039-03-08T19:46:13.411Z is one of the values a float product reads a millisecond short
    assert parse_instant("2039-03-08T19:46:13.411Z", "--start") == 2_183_226_373_411
    assert parse_instant("2039-03-08T19:46:13.411", "--start") == 2_183_226_373_411  # naive is UTC
    assert parse_instant("2039-03-08T21:46:13.411+02:00", "--end") == 2_183_226_373_411
    assert parse_instant(" 2024-01-01 ", "--start") == 1_704_067_200_000


def test_an_instant_that_is_not_iso_8601_names_its_flag() -> None:
    with pytest.raises(UsageError, match="--end: 'yesterday' is not an ISO-8601 datetime"):
        parse_instant("yesterday", "--end")
