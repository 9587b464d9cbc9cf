"""Universe selection: rules + markets + tickers -> symbols (no ccxt, no network)."""

from __future__ import annotations

import pytest

from core.config import ExchangeConfig, UniverseConfig
from core.datasets import configured_series
from core.series import FUNDING_RATES, OPEN_INTEREST, SeriesKey
from core.shards import Shard
from worker.universe import diff, quote_volume, select_symbols


def market(symbol: str, *, type: str = "spot", active: bool | None = True) -> dict:
    base, quote = symbol.split(":")[0].split("/")
    return {"symbol": symbol, "base": base, "quote": quote, "type": type, "active": active}


MARKETS = {m["symbol"]: m for m in [
    market("BTC/USDT"), market("ETH/USDT"), market("SOL/USDT"), market("XRP/USDT"),
    market("BTCUP/USDT"), market("BTC/EUR"), market("DEAD/USDT", active=False),
    market("ADA/USDT", active=None), market("BTC/USDT:USDT", type="swap"),
]}
TICKERS = {"BTC/USDT": {"quoteVolume": 900.0}, "ETH/USDT": {"quoteVolume": 500.0},
           "SOL/USDT": {"quoteVolume": 300.0}, "XRP/USDT": {"quoteVolume": 300.0},
           "BTCUP/USDT": {"quoteVolume": 10_000.0}, "BTC/EUR": {"quoteVolume": 50.0},
           "DEAD/USDT": {"quoteVolume": 99_999.0}, "ADA/USDT": {"baseVolume": 10, "last": 2.0},
           "BTC/USDT:USDT": {"quoteVolume": 1e9}}


def rules(**kw) -> UniverseConfig:
    return UniverseConfig(**{"quote": ["USDT"], "timeframes": ["1m"], **kw})


def test_all_active_spot_markets_of_the_quote() -> None:
    assert select_symbols(rules(), MARKETS, TICKERS) == [
        "ADA/USDT", "BTC/USDT", "BTCUP/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]


def test_top_by_quote_volume_ties_broken_by_name() -> None:
    # BTC 900, ETH 500, then SOL and XRP tie at 300: SOL wins by name; ADA (20) is out.
    assert select_symbols(rules(top=3, exclude=["*UP/USDT"]), MARKETS, TICKERS) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def test_volume_floor_include_and_exclude() -> None:
    chosen = select_symbols(rules(min_quote_volume=400, include=["BTC/EUR", "DEAD/USDT"],
                                  exclude=["*UP/*"]), MARKETS, TICKERS)
    assert chosen == ["BTC/EUR", "BTC/USDT", "ETH/USDT"]  # inactive never enters, even included


def test_market_type_and_missing_tickers() -> None:
    assert select_symbols(rules(type="swap"), MARKETS, {}) == ["BTC/USDT:USDT"]
    assert select_symbols(rules(top=2), MARKETS, {}) == ["ADA/USDT", "BTC/USDT"]
    assert quote_volume({"quoteVolume": "nan"}) == 0.0
    assert quote_volume({"baseVolume": 10, "last": 2.0}) == 20.0


def test_nothing_matches_is_an_empty_list() -> None:
    assert select_symbols(rules(quote=["JPY"]), MARKETS, TICKERS) == []


def test_union_with_explicit_symbols_and_the_shard() -> None:
    config = ExchangeConfig(symbols=[{"symbol": "BTC/USDT", "timeframes": ["1h"]}],
                            universe=rules(timeframes=["1m", "1h"]))
    series = configured_series("binance", config, ["BTC/USDT", "ETH/USDT"])
    assert series == [SeriesKey("binance", "BTC/USDT", "1h"), SeriesKey("binance", "BTC/USDT", "1m"),
                      SeriesKey("binance", "ETH/USDT", "1m"), SeriesKey("binance", "ETH/USDT", "1h")]
    parts = [configured_series("binance", config, ["BTC/USDT", "ETH/USDT"], Shard(i, 2)) for i in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(series)
    assert not set(parts[0]) & set(parts[1])


def test_diff() -> None:
    change = diff(["A/USDT", "B/USDT"], ["B/USDT", "C/USDT"])
    assert change.added == ["C/USDT"] and change.removed == ["A/USDT"] and change
    assert not diff(["A/USDT"], ["A/USDT"])


@pytest.mark.parametrize("body, path", [
    ({"universe": {"timeframes": ["1m"]}}, "exchanges.binance.universe.quote"),
    ({"universe": {"quote": ["USDT"], "timeframes": ["1m"], "top": 0}}, "exchanges.binance.universe.top"),
    ({"universe": {"quote": ["USDT"], "timeframes": ["7q"]}}, "exchanges.binance.universe.timeframes"),
    ({"universe": {"quote": ["USDT"], "timeframes": ["1m"], "type": "margin"}}, "exchanges.binance.universe.type"),
    ({"universe": {"quote": ["USDT"], "timeframes": ["1m"], "colour": 1}}, "exchanges.binance.universe.colour"),
    ({"universe": {"quote": ["USDT"], "timeframes": ["1m"], "min_quote_volume": -1}},
     "exchanges.binance.universe.min_quote_volume"),
    ({"universe": {"quote": ["USDT"], "timeframes": ["1m"], "refresh_minutes": 0}},
     "exchanges.binance.universe.refresh_minutes"),
    ({"ccxt": {}}, "exchanges.binance"),
])
def test_bad_universe_config_names_the_key(tmp_path, body, path) -> None:
    import yaml

    from core.config import ConfigError, load_config
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump({"exchanges": {"binance": body}}))
    with pytest.raises(ConfigError) as err:
        load_config(file, environ={})
    assert path in [p for p, _ in err.value.problems], err.value.render()


def test_universe_config_loads(tmp_path) -> None:
    from core.config import load_config
    file = tmp_path / "c.yaml"
    file.write_text("settings: {shard_by: series}\nexchanges:\n  binance:\n    universe:\n"
                    "      quote: USDT\n      top: 5\n      exclude: ['*UP/USDT']\n      timeframes: [1m]\n")
    config = load_config(file, environ={})
    assert config.settings.shard_by == "series"
    assert config.exchanges["binance"].universe.quote == ["USDT"]
    assert config.exchanges["binance"].symbols == []


def test_the_universe_asks_for_funding_and_open_interest_as_a_symbol_entry_does() -> None:
    config = ExchangeConfig(universe=rules(type="swap", timeframes=[], funding_rates=True, open_interest=["1h"]))
    series = configured_series("binanceusdm", config, ["BTC/USDT:USDT"])
    assert [(s.symbol, s.dataset, s.timeframe) for s in series] == [
        ("BTC/USDT:USDT", FUNDING_RATES, ""), ("BTC/USDT:USDT", OPEN_INTEREST, "1h")]
    with pytest.raises(ValueError, match="open-interest period"):
        ExchangeConfig(universe=rules(timeframes=["1m"], open_interest=["3m"]))
