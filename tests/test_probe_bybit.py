"""``--mode probe`` on Bybit: with each page bounded by an end, ``since`` is honoured and the
bisection finds the listing (the simulator's BTC markets start 2017-01-01)."""

from __future__ import annotations

import pytest

from core.timefmt import iso_utc
from simulator.markets import market
from tests.test_probe import probe


@pytest.mark.parametrize("symbol", ["BTC/USDT", "BTC/USDT:USDT"])
def test_bybit_full_pages_since_honoured_open_bar_and_the_listing(tmp_path, sim, symbol):
    result = probe(tmp_path, sim, "bybit", symbol)
    assert 950 <= result["page_size"] <= 1000         # one window of 1,000 minutes; some are quiet
    assert result["since_honoured"] is True
    assert result["open_bar_included"] is True
    assert result["oldest_bar"] == iso_utc(market("bybit", symbol).listed_ms)
    assert "1m" in result["timeframes"] and result["rate_limit_ms"] == 20
