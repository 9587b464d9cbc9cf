"""Test selection: multi-minute end-to-end tests run only with --run-slow (as .ci/run does)."""

from __future__ import annotations

import pytest


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
