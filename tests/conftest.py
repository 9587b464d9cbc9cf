"""Test selection: multi-minute end-to-end tests run only with --run-slow (as .ci/run does)."""

from __future__ import annotations

import pytest

from tests.e2e_support import BQ_PROJECT, Collector


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the multi-minute end-to-end tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: multi-minute end-to-end test (needs --run-slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="multi-minute test: run with --run-slow")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


# -- fixtures shared by the end-to-end tests ------------------------------------------------

@pytest.fixture
def sim():
    """The exchange simulator on 127.0.0.1, wall clock, no latency."""
    from simulator import ExchangeSimulator

    simulator = ExchangeSimulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture
def collectors():
    """Collectors started by a test; whatever is still running at the end is killed, workers
    included (a test that failed halfway must not leave workers writing into the next one)."""
    started: list[Collector] = []
    yield started
    for collector in started:
        collector.kill()


@pytest.fixture
def bigquery_fake():
    from tests.fakes.bigquery_fake import BigQueryFake

    fake = BigQueryFake(project=BQ_PROJECT).start()
    yield fake
    fake.stop()


@pytest.fixture
def loki():
    from tests.fakes.loki_fake import LokiFake

    fake = LokiFake(username="e2e-user", password="e2e-loki-password").start()
    yield fake
    fake.stop()
