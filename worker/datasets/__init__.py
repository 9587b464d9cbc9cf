"""The datasets a worker collects: candles, funding rates, open interest.

LIVE, HISTORY and AUDIT run every series through :func:`dataset_for`; a dataset knows how to
page through a range on its exchange, validate and key its rows, and which table they go to
(the row type decides the table in the sinks).
"""

from __future__ import annotations

from core.series import FUNDING_RATES, OHLCV, OPEN_INTEREST, SeriesKey
from worker.datasets.base import Dataset
from worker.datasets.funding import FundingRates
from worker.datasets.ohlcv import Ohlcv
from worker.datasets.open_interest import OpenInterest

DATASETS: dict[str, Dataset] = {OHLCV: Ohlcv(), FUNDING_RATES: FundingRates(), OPEN_INTEREST: OpenInterest()}


def dataset_for(series: SeriesKey) -> Dataset:
    return DATASETS[series.dataset]


__all__ = ["DATASETS", "Dataset", "dataset_for"]
