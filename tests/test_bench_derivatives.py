"""The funding and open-interest bench on a small workload: every row the ideal counts is
stored, with no more requests than full pages need."""

from __future__ import annotations

import pytest

from bench import derivatives_history
from simulator.markets import MARKETS


@pytest.fixture
def markets_restored():
    """The bench lists more perpetuals in this process; later tests must not see them."""
    saved = dict(MARKETS)
    yield
    MARKETS.clear()
    MARKETS.update(saved)


def test_a_small_backfill_stores_every_row_in_the_fewest_requests(tmp_path, markets_restored) -> None:
    f = derivatives_history.measure(perps=4, days=3, period="1h", latency=0.0, workdir=tmp_path)
    assert f["exit_code"] == 0 and f["statuses"] == {"complete": 8} and f["series"] == 8
    assert f["rows"] == f["ideal_rows"] > 0
    assert sum(f["requests"].values()) == f["ideal_requests"] == 8   # one page per series and dataset
    assert f["http_429"] == 0
