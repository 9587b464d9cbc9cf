"""Configuration: the YAML file, validated into typed models before any worker starts.

A bad config must stop the service at boot with every problem listed at once (key path and
what is wrong), not one per restart, and not halfway through a run. Whether an exchange
actually lists a symbol or timeframe can only be known after ``load_markets``; that check
belongs to the worker, which skips the bad series and keeps the rest.

One module on purpose: the models nest (app -> exchanges -> symbols / universe, settings,
storage) and pydantic reports every problem with its full key path only when they validate
together; split across files they would read worse, not better.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.ccxt_catalog import known_exchange_ids
from core.timeframes import is_valid_timeframe

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._-]*/[A-Z0-9][A-Z0-9._-]*(:[A-Z0-9._-]+)?$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """Every problem found in a config file, each as (key path, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s)"]
        lines += [f"  {path or '<root>'}: {message}" for path, message in self.problems]
        return "\n".join(lines)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(_Strict):
    update_interval_seconds: PositiveInt = 60
    history_page_limit: PositiveInt = 1000
    # HISTORY: rows per write (one load job or one SQLite transaction), and so how often the
    # checkpoint moves. BigQuery takes 1,500 load jobs per table a day: keep this large there.
    # With SQLite and no value in the file, SQLITE_HISTORY_FLUSH_ROWS (see AppConfig).
    history_flush_rows: PositiveInt = 50_000
    service_name: str = "tda-large-collector"
    environment: str = "production"
    health_port: int = Field(default=8080, ge=0, le=65535)
    log_level: str = "INFO"
    # LIVE: how far back a worker repairs a gap from the last stored bar after downtime.
    max_gap_repair_hours: PositiveFloat = 168
    # Requests one worker keeps in flight; ccxt's throttler still paces them.
    max_concurrent_requests: PositiveInt = 8
    # Supervisor: recycle a worker above this resident size.
    max_worker_rss_mb: PositiveInt = 1024
    # Supervisor: how long workers get to finish the write in flight on SIGTERM.
    shutdown_grace_seconds: PositiveFloat = 8
    # Supervisor: a worker silent for this many intervals is considered hung.
    heartbeat_timeout_intervals: PositiveInt = 5
    # Supervisor (LIVE): a series not stored for this many intervals is stale in /healthz;
    # when every series of an exchange is stale, /healthz answers 503.
    stale_after_intervals: PositiveInt = 3
    # Where workers keep state that must survive a restart (spooled rows, dead letters,
    # HISTORY checkpoints); a volume in the container.
    state_dir: str = "data/state"
    # LIVE: rows kept on disk while the store is down; beyond this, gap repair takes over.
    spool_max_rows: PositiveInt = 500_000
    # HISTORY: how many times a crashed worker is restarted before its series count as failed.
    history_restart_budget: int = Field(default=3, ge=0)
    # With --shard I/N: split by whole exchanges, or by (exchange, symbol) pairs. "series"
    # spreads one exchange over several hosts, which only adds request capacity when each
    # host has its own egress IP (exchanges rate-limit per IP).
    shard_by: Literal["exchange", "series"] = "exchange"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()


class SqliteConfig(_Strict):
    path: str = "data/market_data.sqlite"


class BigQueryConfig(_Strict):
    project: str | None = None
    dataset: str = "market_data"
    table: str = "market_data_ohlcv"
    location: str = "US"
    # Tables of the other datasets, by dataset (funding_rates, open_interest); default names
    # market_data_funding_rates and market_data_open_interest in the same dataset.
    tables: dict[Literal["funding_rates", "open_interest"], str] = Field(default_factory=dict)
    # The client's default retry runs for 10 minutes: far too long for a LIVE cycle.
    request_timeout_seconds: PositiveFloat = 30
    retry_deadline_seconds: PositiveFloat = 60


class StorageConfig(_Strict):
    backend: Literal["sqlite", "bigquery"] = "sqlite"
    sqlite: SqliteConfig = SqliteConfig()
    bigquery: BigQueryConfig = BigQueryConfig()


# Open-interest periods some exchange serves (ccxt notation); whether this exchange serves
# one is checked by the worker after load_markets.
OPEN_INTEREST_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


class SymbolConfig(_Strict):
    symbol: str
    funding_rates: bool = False
    open_interest: list[str] = Field(default_factory=list)
    # OHLCV timeframes; may be empty when another dataset is asked for (declared after them,
    # so that its check sees them).
    timeframes: list[str] = Field(default=None, validate_default=True)  # type: ignore[assignment]

    @field_validator("open_interest")
    @classmethod
    def _known_periods(cls, values: list[str]) -> list[str]:
        problems = [f"{p!r} is not an open-interest period (one of {', '.join(OPEN_INTEREST_PERIODS)})"
                    for p in values if p not in OPEN_INTEREST_PERIODS]
        duplicates = sorted({p for p in values if values.count(p) > 1})
        if duplicates:
            problems.append(f"listed more than once: {', '.join(duplicates)}")
        if problems:
            raise ValueError("; ".join(problems))
        return values


    @field_validator("symbol")
    @classmethod
    def _unified_symbol(cls, value: str) -> str:
        if not _SYMBOL.match(value):
            raise ValueError(f"{value!r} is not a unified symbol of the form BASE/QUOTE, e.g. BTC/USDT")
        return value

    @field_validator("timeframes", mode="before")
    @classmethod
    def _timeframes_or_another_dataset(cls, values: Any, info: ValidationInfo) -> Any:
        other_datasets = info.data.get("funding_rates") or info.data.get("open_interest")
        if values is None and not other_datasets:
            raise ValueError("required key is missing (unless funding_rates or open_interest is set)")
        if values == [] and not other_datasets:
            raise ValueError("should have at least 1 item (or set funding_rates / open_interest)")
        return [] if values is None else values

    @field_validator("timeframes")
    @classmethod
    def _valid_timeframes(cls, values: list[str]) -> list[str]:
        problems = [f"{tf!r} is not a timeframe (e.g. 1m, 15m, 1h, 4h, 1d, 1w, 1M)"
                    for tf in values if not isinstance(tf, str) or not is_valid_timeframe(tf)]
        duplicates = sorted({tf for tf in values if values.count(tf) > 1})
        if duplicates:
            problems.append(f"listed more than once: {', '.join(duplicates)}")
        if problems:
            raise ValueError("; ".join(problems))
        return values


def _valid_patterns(values: list[str]) -> list[str]:
    bad = [v for v in values if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"patterns must be non-empty strings (got {bad!r})")
    return values


class UniverseConfig(_Strict):
    """Symbols chosen by rule (design section 10); resolved by the worker, which has ccxt."""

    quote: list[str] = Field(min_length=1)
    type: Literal["spot", "swap", "future"] = "spot"
    top: PositiveInt | None = None
    min_quote_volume: float = Field(default=0, ge=0, allow_inf_nan=False)
    include: Annotated[list[str], AfterValidator(_valid_patterns)] = Field(default_factory=list)
    exclude: Annotated[list[str], AfterValidator(_valid_patterns)] = Field(default_factory=list)
    # The datasets of every symbol selected, as for a symbol entry (timeframes after the others,
    # so that its check sees them).
    funding_rates: bool = False
    open_interest: list[str] = Field(default_factory=list)
    timeframes: list[str] = Field(default=None, validate_default=True)  # type: ignore[assignment]
    refresh_minutes: PositiveFloat = 60
    backfill_hours: float = Field(default=24, ge=0, allow_inf_nan=False)

    @field_validator("quote", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("quote")
    @classmethod
    def _upper_codes(cls, values: list[str]) -> list[str]:
        return [v.upper() for v in values]

    @field_validator("open_interest")
    @classmethod
    def _known_periods(cls, values: list[str]) -> list[str]:
        return SymbolConfig._known_periods(values)

    @field_validator("timeframes", mode="before")
    @classmethod
    def _timeframes_or_another_dataset(cls, values: Any, info: ValidationInfo) -> Any:
        return SymbolConfig._timeframes_or_another_dataset(values, info)

    @field_validator("timeframes")
    @classmethod
    def _valid_timeframes(cls, values: list[str]) -> list[str]:
        return SymbolConfig._valid_timeframes(values)


class ExchangeConfig(_Strict):
    ccxt: dict[str, Any] = Field(default_factory=dict)
    symbols: list[SymbolConfig] = Field(default_factory=list)
    universe: UniverseConfig | None = None

    @model_validator(mode="after")
    def _something_to_collect(self) -> ExchangeConfig:
        if not self.symbols and self.universe is None:
            raise ValueError("needs symbols (at least 1), a universe, or both")
        return self

    @model_validator(mode="before")
    @classmethod
    def _accept_short_form(cls, value: Any) -> Any:
        # The SDD's form is a bare list of symbols; the long form adds ccxt settings.
        return {"symbols": value} if isinstance(value, list) else value

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, values: list[SymbolConfig]) -> list[SymbolConfig]:
        message = _duplicate_symbols_message([entry.symbol for entry in values])
        if message:
            raise ValueError(message)
        return values


def _duplicate_symbols_message(names: list[Any]) -> str | None:
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if not duplicates:
        return None
    return (f"symbol listed more than once: {', '.join(duplicates)}; "
            "merge the timeframes into one entry")


def _known_exchange_id(value: str) -> str:
    if value not in known_exchange_ids():
        raise ValueError(f"unknown exchange id {value!r}; use a ccxt id, e.g. binance, kraken, okx")
    return value


# Validating the key (not the whole mapping afterwards) lets pydantic report an unknown id
# together with every other problem in the file.
ExchangeId = Annotated[str, AfterValidator(_known_exchange_id)]


# SQLite commits 10,000 rows in tens of milliseconds. Smaller batches keep the last write of a
# backfill, which no fetching overlaps, short.
SQLITE_HISTORY_FLUSH_ROWS = 10_000


class AppConfig(_Strict):
    settings: Settings = Settings()
    storage: StorageConfig = StorageConfig()
    exchanges: dict[ExchangeId, ExchangeConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _history_batches_sized_for_the_store(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        storage, settings = value.get("storage") or {}, value.get("settings") or {}
        if not (isinstance(storage, dict) and isinstance(settings, dict)):
            return value
        if storage.get("backend", "sqlite") == "sqlite" and "history_flush_rows" not in settings:
            value = {**value, "settings": {**settings, "history_flush_rows": SQLITE_HISTORY_FLUSH_ROWS}}
        return value

    def series_count(self) -> int:
        return sum(len(s.timeframes) + s.funding_rates + len(s.open_interest)
                   for e in self.exchanges.values() for s in e.symbols)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read, validate and apply environment overrides; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    source = str(path)
    raw = _read_yaml(Path(path), source)
    raw = _apply_env_overrides(raw, environ)
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, raw) for err in exc.errors()]
        # Duplicates are only checked by the model once every entry is valid; report them now.
        problems += _duplicate_symbol_problems(raw)
        raise ConfigError(source, list(dict.fromkeys(problems))) from None


def _read_yaml(path: Path, source: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [("", f"not valid YAML{where}: {problem}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [("", "must be a mapping with at least an 'exchanges' key")])
    return data


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """ENVIRONMENT, LOG_LEVEL and GOOGLE_CLOUD_PROJECT override or fill in the file's values."""
    raw = dict(raw)
    settings = raw.get("settings")
    if isinstance(settings, dict) or settings is None:
        settings = dict(settings or {})
        if environ.get("ENVIRONMENT"):
            settings["environment"] = environ["ENVIRONMENT"]
        if environ.get("LOG_LEVEL"):
            settings["log_level"] = environ["LOG_LEVEL"]
        if settings:
            raw["settings"] = settings
    storage = raw.get("storage")
    if environ.get("GOOGLE_CLOUD_PROJECT") and isinstance(storage, dict):
        bigquery = storage.get("bigquery")
        if isinstance(bigquery, dict) and not bigquery.get("project"):
            raw["storage"] = {**storage, "bigquery": {**bigquery, "project": environ["GOOGLE_CLOUD_PROJECT"]}}
        elif bigquery is None:
            raw["storage"] = {**storage, "bigquery": {"project": environ["GOOGLE_CLOUD_PROJECT"]}}
    return raw


def _duplicate_symbol_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    exchanges = raw.get("exchanges")
    problems = []
    for exchange_id, body in (exchanges.items() if isinstance(exchanges, dict) else ()):
        short_form = isinstance(body, list)
        entries = body if short_form else (body or {}).get("symbols") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            continue
        message = _duplicate_symbols_message([e.get("symbol") for e in entries if isinstance(e, dict)])
        if message:
            path = f"exchanges.{exchange_id}" + ("" if short_form else ".symbols")
            problems.append((path, message))
    return problems


def _describe(error: Any, raw: dict[str, Any]) -> tuple[str, str]:
    loc = list(error["loc"])
    # In the SDD's short form the user never wrote "symbols": report the path they wrote.
    if len(loc) >= 3 and loc[0] == "exchanges" and loc[2] == "symbols":
        if isinstance((raw.get("exchanges") or {}).get(loc[1]), list):
            del loc[2]
    if loc and loc[-1] == "[key]":  # an invalid mapping key: the path is the key itself
        loc.pop()
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if kind not in ("value_error", "assertion_error") and "input" in error:
            message += f" (got {error['input']!r})"[:200]
    return path, message
