"""``--mode probe`` end to end on KuCoin and Coinbase: the real CLI in a subprocess against the
simulator's truth. Both honour ``since``, serve the open bar and reach back to the listing;
KuCoin carries 1,500 bars a request and Coinbase 300 (ccxt's cap; Coinbase refuses over 350)."""

from __future__ import annotations

import pytest

from core.timefmt import parse_iso_utc
from simulator.markets import market
from tests.test_probe import probe

DAY_MS = 86_400_000


@pytest.mark.parametrize(("exchange", "symbol", "page"), [("kucoin", "BTC/USDT", 1500), ("coinbase", "BTC/USD", 300)])
def test_full_pages_since_honoured_open_bar_and_history_back_to_the_listing(
        tmp_path, sim, exchange: str, symbol: str, page: int) -> None:
    result = probe(tmp_path, sim, exchange, symbol)
    # A full page, less the minutes without a trade (the simulator has a few, like a real market).
    assert 0.97 * page <= result["page_size"] <= page
    assert result["since_honoured"] is True
    assert result["open_bar_included"] is True
    assert "1m" in result["timeframes"] and result["rate_limit_ms"] > 0
    listed = market(exchange, symbol).listed_ms
    assert listed <= parse_iso_utc(result["oldest_bar"]) < listed + DAY_MS
