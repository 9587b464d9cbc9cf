"""What AUDIT asks a BigQuery store: the stored times of one series in a range, per dataset,
through the real client against the BigQuery fake."""

from __future__ import annotations

import pytest

from core.series import FUNDING_RATES, OPEN_INTEREST, FundingRow, OhlcvRow, OpenInterestRow, series_key
from tests.e2e_support import BQ_DATASET, BQ_PROJECT

MINUTE, HOUR = 60_000, 3_600_000
T0 = 1_700_006_400_000


@pytest.fixture
def sink(bigquery_fake, monkeypatch):
    from worker.sinks.bigquery import BigQuerySink

    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_fake.base_url)
    sink = BigQuerySink(project=BQ_PROJECT, dataset=BQ_DATASET, table="market_data_ohlcv", location="US",
                        request_timeout_s=5, retry_deadline_s=1)
    sink.ensure()
    return sink


def test_stored_times_of_each_dataset_are_those_of_its_series_in_the_range(sink) -> None:
    # 5m bars open after the 1m ones stored: a query that lost the timeframe would show them
    candles = [OhlcvRow(T0 + i * step, "binance", s, tf, 1.0, 2.0, 0.5, 1.5, 3.0, T0)
               for s in ("BTC/USDT", "ETH/USDT") for tf, step, first in (("1m", MINUTE, 0), ("5m", 5 * MINUTE, 1))
               for i in range(first, first + 5)]
    # funding times a few milliseconds off the hour, as exchanges publish them: exact to the ms
    funding = [FundingRow(T0 + i * 8 * HOUR + 7, "binance", s, 0.0001, T0) for i in range(4)
               for s in ("BTC/USDT:USDT", "ETH/USDT:USDT")]
    # the 1h periods open where no 5m row is stored: a query that lost the period would show them
    open_interest = [OpenInterestRow(T0 + (i + 1) * 5 * MINUTE, "binance", "BTC/USDT:USDT", "5m", 10.0, None, T0)
                     for i in range(4)]
    open_interest += [OpenInterestRow(T0 + i * HOUR, "binance", "BTC/USDT:USDT", "1h", 10.0, None, T0)
                      for i in range(4)]
    assert sink.write(candles + funding + open_interest).written == len(candles + funding + open_interest)

    stored = sink.stored_timestamps
    assert stored(series_key("binance", "BTC/USDT", "1m"), T0 + MINUTE, T0 + 10 * MINUTE) == [
        T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert stored(series_key("binance", "BTC/USDT:USDT", "", FUNDING_RATES), T0, T0 + 24 * HOUR) == [
        T0 + 7, T0 + 8 * HOUR + 7, T0 + 16 * HOUR + 7]
    assert stored(series_key("binance", "BTC/USDT:USDT", "5m", OPEN_INTEREST), T0, T0 + HOUR) == [
        T0 + (i + 1) * 5 * MINUTE for i in range(4)]
    assert stored(series_key("binance", "SOL/USDT", "1m"), T0, T0 + HOUR) == []
