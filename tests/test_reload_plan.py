"""What a SIGHUP would change, decided from the running and the new config alone."""

from __future__ import annotations

from core.config import AppConfig
from supervisor.reload import plan_reload


def config(**settings) -> dict:
    return {"settings": settings,
            "exchanges": {"binance": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}],
                          "okx": [{"symbol": "BTC/USDT", "timeframes": ["1m"]}]}}


def test_only_the_changed_exchange_restarts_and_new_and_removed_are_told_apart() -> None:
    running = AppConfig.model_validate(config())
    raw = config()
    raw["exchanges"]["binance"][0]["timeframes"] = ["1m", "1h"]
    del raw["exchanges"]["okx"]
    raw["exchanges"]["kraken"] = [{"symbol": "BTC/USD", "timeframes": ["1m"]}]
    plan = plan_reload(running, AppConfig.model_validate(raw), ["binance", "okx"], None)
    assert (plan.added, plan.removed, plan.changed, plan.unchanged) == (["kraken"], ["okx"], ["binance"], [])


def test_restart_only_settings_keep_their_running_value_and_shared_settings_restart_all() -> None:
    running = AppConfig.model_validate(config(health_port=8080))
    new = AppConfig.model_validate({**config(health_port=9090, update_interval_seconds=30),
                                    "storage": {"sqlite": {"path": "elsewhere.sqlite"}}})
    plan = plan_reload(running, new, ["binance", "okx"], None)
    assert plan.needs_restart == ["settings.health_port", "storage.sqlite.path"]
    assert plan.config.settings.health_port == 8080 and plan.config.storage == running.storage
    assert plan.settings_changed == ["settings.update_interval_seconds"]
    assert plan.changed == ["binance", "okx"]


def test_the_exchange_selection_of_the_command_line_holds_across_reloads() -> None:
    running = AppConfig.model_validate(config())
    raw = config()
    raw["exchanges"]["kraken"] = [{"symbol": "BTC/USD", "timeframes": ["1m"]}]
    plan = plan_reload(running, AppConfig.model_validate(raw), ["binance"], ["binance"])
    assert plan.noop and plan.unchanged == ["binance"]
