"""What LIVE resumes from: the newest stored time of each series, in both stores, for every
dataset, exact to the millisecond (BigQuery through the real client against its fake)."""

from __future__ import annotations

import pytest

from core.series import FUNDING_RATES, OPEN_INTEREST, FundingRow, OhlcvRow, OpenInterestRow, series_key
from tests.e2e_support import BQ_DATASET, BQ_PROJECT

MINUTE, HOUR = 60_000, 3_600_000
T0 = 1_700_006_400_000


@pytest.fixture(params=["sqlite", "bigquery"])
def sink(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        from worker.sinks.sqlite import SqliteSink

        sink = SqliteSink(tmp_path / "md.sqlite")
    else:
        from worker.sinks.bigquery import BigQuerySink

        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", request.getfixturevalue("bigquery_fake").base_url)
        sink = BigQuerySink(project=BQ_PROJECT, dataset=BQ_DATASET, table="market_data_ohlcv",
                            location="US", request_timeout_s=5, retry_deadline_s=1)
    sink.ensure()
    return sink


def test_newest_stored_time_of_each_series_of_every_dataset(sink) -> None:
    candles = [OhlcvRow(T0 + i * step, exchange, "BTC/USDT", tf, 1.0, 2.0, 0.5, 1.5, 3.0, T0)
               for exchange in ("binance", "okx") for tf, step in (("1m", MINUTE), ("1h", HOUR))
               for i in range(3)]
    # a funding time a few hundred milliseconds off the hour, as exchanges publish them
    funding = [FundingRow(T0 + i * 8 * HOUR + 411, "binance", "BTC/USDT:USDT", 0.0001, T0) for i in range(3)]
    open_interest = [OpenInterestRow(T0 + i * 5 * MINUTE, "binance", "BTC/USDT:USDT", "5m", 10.0, None, T0)
                     for i in range(2)]
    sink.write(candles + funding + open_interest)

    wanted = [series_key("binance", "BTC/USDT", "1m"), series_key("okx", "BTC/USDT", "1h"),
              series_key("binance", "BTC/USDT:USDT", "", FUNDING_RATES),
              series_key("binance", "BTC/USDT:USDT", "5m", OPEN_INTEREST),
              series_key("binance", "ETH/USDT", "1m")]  # nothing stored: not in the answer
    assert sink.last_timestamps(wanted) == {
        wanted[0]: T0 + 2 * MINUTE, wanted[1]: T0 + 2 * HOUR,
        wanted[2]: T0 + 16 * HOUR + 411, wanted[3]: T0 + 5 * MINUTE}
