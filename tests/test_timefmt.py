"""Times as text and back: what a store writes is read back to the same millisecond."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from core.timefmt import epoch_ms, iso_utc, parse_iso_utc


def test_parse_iso_utc_reads_back_every_millisecond_iso_utc_writes() -> None:
    rng = random.Random(5)
    bars = [1_700_000_040_000 + i * 60_000 for i in range(2_000)]
    anything = [rng.randrange(0, 4_102_444_800_000) for _ in range(20_000)]
    for ms in bars + anything + [0, 5, 999, 86_399_999, 1_704_067_200_005]:
        assert parse_iso_utc(iso_utc(ms)) == ms, ms


def test_parse_iso_utc_takes_any_offset_and_bare_seconds() -> None:
    assert parse_iso_utc("2024-01-01T02:00:00.005+02:00") == 1_704_067_200_005
    assert parse_iso_utc("2024-01-01T00:00:00Z") == 1_704_067_200_000


def test_epoch_ms_is_exact_where_a_float_product_is_not() -> None:
    moment = datetime(2039, 3, 8, 19, 46, 13, 411_000, tzinfo=UTC)
    assert int(moment.timestamp() * 1000) == 2_183_226_373_410  # the float product is 1 ms short
    assert epoch_ms(moment) == 2_183_226_373_411
    assert epoch_ms(moment.astimezone(timezone(timedelta(hours=-5)))) == 2_183_226_373_411
