"""Validation of funding rates and open interest as ccxt hands them over."""

from __future__ import annotations

import math

import pytest

from core.series import FundingPoint, OpenInterestPoint
from worker.datasets.points import parse_funding, parse_open_interest

HOUR = 3_600_000
T0 = 1_700_006_400_000  # on the 8h grid


def funding(ts: object, rate: object = 0.0001) -> dict:
    return {"timestamp": ts, "fundingRate": rate, "info": {"raw": ts}}


def open_interest(ts: object, amount: object = 10.0, value: object = 500.0) -> dict:
    return {"timestamp": ts, "openInterestAmount": amount, "openInterestValue": value, "info": {"raw": ts}}


@pytest.mark.parametrize("entry, reason", [
    (funding(T0, None), "funding rate is not a finite number"),
    (funding(T0, math.nan), "funding rate is not a finite number"),
    (funding(T0, 10**400), "funding rate is not a finite number"),
    (funding(-1), "bad timestamp"),
    (funding(True), "bad timestamp"),
    ("garbage", "malformed"),
])
def test_a_bad_funding_rate_is_rejected_with_its_reason_and_the_rest_kept(entry, reason) -> None:
    parsed = parse_funding([funding(T0 + 8 * HOUR + 3), entry, funding(T0 - 8 * HOUR)])
    # funding times a few milliseconds off the hour are what the exchanges publish: kept as sent
    assert parsed.points == [FundingPoint(T0 - 8 * HOUR, 0.0001), FundingPoint(T0 + 8 * HOUR + 3, 0.0001)]
    assert len(parsed.rejected) == 1 and reason in parsed.rejected[0].reason


@pytest.mark.parametrize("entry, reason", [
    (open_interest(T0, -1.0), "open interest is negative"),
    (open_interest(T0, 1.0, -5.0), "open interest is negative"),
    (open_interest(T0, math.inf), "open interest amount is not a finite number"),
    (open_interest(T0, 1.0, "x"), "open interest value is not a finite number"),
    (open_interest(T0 + 1), "not on the 5m grid"),
])
def test_bad_open_interest_is_rejected_with_its_reason_and_the_rest_kept(entry, reason) -> None:
    parsed = parse_open_interest([open_interest(T0 - 300_000), entry, open_interest(T0 + 300_000, value=None)], "5m")
    assert parsed.points == [OpenInterestPoint(T0 - 300_000, 10.0, 500.0), OpenInterestPoint(T0 + 300_000, 10.0, None)]
    assert len(parsed.rejected) == 1 and reason in parsed.rejected[0].reason


def test_a_repeated_time_keeps_its_first_copy() -> None:
    parsed = parse_funding([funding(T0, 0.1), funding(T0, 0.2)])
    assert parsed.points == [FundingPoint(T0, 0.1)]
    assert [r.reason for r in parsed.rejected] == [f"duplicate timestamp {T0}"]
