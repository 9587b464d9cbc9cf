"""Running the real CLI as a subprocess against the loopback fakes, and reading what it says."""

from __future__ import annotations

import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

# The CLI as a child process is the bench's; the tests import it from here.
from bench.collector import ROOT as ROOT
from bench.collector import Collector as Collector
from bench.collector import free_port as free_port
from core.timefmt import epoch_ms, parse_iso_utc


def write_config(path: Path, sim: Any, exchanges: dict[str, list[dict]], *, settings: dict | None = None,
                 storage: dict | None = None) -> Path:
    """A config whose exchanges all point at the simulator."""
    config = {
        "settings": {"update_interval_seconds": 1, "health_port": free_port(),
                     "environment": "test", "state_dir": str(path.parent / "state"), **(settings or {})},
        "storage": storage or {"backend": "sqlite", "sqlite": {"path": str(path.parent / "md.sqlite")}},
        "exchanges": {name: {"ccxt": sim.ccxt_config(name), "symbols": symbols}
                      for name, symbols in exchanges.items()},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------
# End-to-end helpers: fixtures, polling, reading the stores, and comparing them with truth().
# ------------------------------------------------------------------------------------------

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
TIMEFRAME_MS = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "1h": HOUR_MS,
                "4h": 4 * HOUR_MS, "1d": 24 * HOUR_MS}
BQ_PROJECT, BQ_DATASET = "test-project", "market_data"
TABLE, LATEST_VIEW = "market_data_ohlcv", "market_data_ohlcv_latest"

Values = tuple[float, float, float, float, float]      # open, high, low, close, volume
Series = tuple[str, str, str]                           # exchange, symbol, timeframe


def now_ms() -> int:
    return int(time.time() * 1000)


def floor_to(ms: int, step_ms: int) -> int:
    return ms // step_ms * step_ms


def iso_arg(ms: int) -> str:
    """A ``--start``/``--end`` value (naive ISO-8601, which the CLI reads as UTC)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def poll(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """The predicate's first truthy value, checked every ``every`` s for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def e2e_config(tmp_path: Path, sim: Any, exchanges: dict[str, list[dict]], *, settings: dict | None = None,
               storage: dict | None = None, name: str = "c.yaml", state: str = "state") -> Path:
    """``write_config`` with the worker state (spool, checkpoints) kept in this test's folder."""
    return write_config(tmp_path / name, sim, exchanges, storage=storage,
                        settings={"state_dir": str(tmp_path / state), **(settings or {})})


def bigquery_storage() -> dict:
    return {"backend": "bigquery", "bigquery": {"project": BQ_PROJECT, "dataset": BQ_DATASET}}


def bigquery_env(fake: Any) -> dict[str, str]:
    return {"BIGQUERY_EMULATOR_HOST": fake.base_url, "GOOGLE_CLOUD_PROJECT": BQ_PROJECT}


def loki_env(fake: Any) -> dict[str, str]:
    return {"LOKI_URL": fake.url, "LOKI_USERNAME": "e2e-user", "LOKI_PASSWORD": "e2e-loki-password"}


@dataclass(frozen=True)
class StoredBar:
    values: Values
    ingested_at: int            # epoch ms


Store = dict[Series, dict[int, StoredBar]]   # series -> open time (ms) -> latest version


def _index(rows: list[tuple[str, str, str, int, Values, int]]) -> tuple[Store, list]:
    """Group (exchange, symbol, timeframe, ts, values, ingested_at) rows; report repeated keys."""
    store: Store = {}
    repeated = []
    for exchange, symbol, timeframe, ts, values, ingested in rows:
        bars = store.setdefault((exchange, symbol, timeframe), {})
        if ts in bars:
            repeated.append((exchange, symbol, timeframe, ts))
        bars[ts] = StoredBar(values, ingested)
    return store, repeated


def sqlite_latest(path: Path) -> Store:
    """The ``market_data_ohlcv_latest`` view of a SQLite store; fails on a repeated key."""
    if not Path(path).exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        raw = conn.execute(f"SELECT exchange, symbol, timeframe, timestamp, open, high, low, close, "
                           f"volume, ingested_at FROM {LATEST_VIEW}").fetchall()
    except sqlite3.OperationalError as exc:     # not created yet
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        conn.close()
    store, repeated = _index([(e, s, tf, parse_iso_utc(ts), (o, h, l, c, v), parse_iso_utc(ing))
                              for e, s, tf, ts, o, h, l, c, v, ing in raw])
    assert not repeated, f"latest view repeats keys: {repeated[:5]}"
    return store


def _bq_row(row: Any) -> tuple[str, str, str, int, Values, int]:
    return (row["exchange"], row["symbol"], row["timeframe"], epoch_ms(row["timestamp"]),
            (row["open"], row["high"], row["low"], row["close"], row["volume"]),
            epoch_ms(row["ingested_at"]))


def bigquery_client(fake: Any) -> Any:
    """The real google-cloud-bigquery client, anonymous, talking to the fake."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=BQ_PROJECT, credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=fake.base_url))


def bigquery_latest_view(fake: Any) -> tuple[Store, list]:
    """Rows of the product's ``market_data_ohlcv_latest`` view, queried with the real client.

    Returns the store and the keys the view returned more than once (should be none).
    """
    client = bigquery_client(fake)
    try:
        rows = client.query(f"SELECT * FROM `{BQ_PROJECT}.{BQ_DATASET}.{LATEST_VIEW}`").result()
        return _index([_bq_row(r) for r in rows])
    finally:
        client.close()


def bigquery_table_latest(fake: Any) -> Store:
    """The latest version per key computed here from every stored row of the table."""
    store: Store = {}
    for row in fake.rows(BQ_DATASET, TABLE):
        exchange, symbol, timeframe, ts, values, ingested = _bq_row(row)
        bars = store.setdefault((exchange, symbol, timeframe), {})
        if ts not in bars or ingested >= bars[ts].ingested_at:
            bars[ts] = StoredBar(values, ingested)
    return store


def bigquery_versions(fake: Any) -> dict[tuple[Series, int], list[StoredBar]]:
    """Every stored version of every bar of the table, oldest ingestion first."""
    versions: dict[tuple[Series, int], list[StoredBar]] = {}
    for row in fake.rows(BQ_DATASET, TABLE):
        exchange, symbol, timeframe, ts, values, ingested = _bq_row(row)
        versions.setdefault(((exchange, symbol, timeframe), ts), []).append(StoredBar(values, ingested))
    for bars in versions.values():
        bars.sort(key=lambda b: b.ingested_at)
    return versions


def values_of(bars: dict[int, StoredBar]) -> dict[int, Values]:
    return {ts: bar.values for ts, bar in bars.items()}


def truth_bars(series: Series, start_ms: int, end_ms: int, now: int | None = None) -> dict[int, Values]:
    """The simulator's closed bars with open time in [start, end), as ccxt parses them."""
    from simulator import truth

    return {int(ts): (o, h, l, c, v) for ts, o, h, l, c, v in truth(*series, start_ms, end_ms, now_ms=now)}


def closed_by(bars: dict[int, Any], timeframe: str, cutoff_ms: int) -> dict[int, Any]:
    """The bars that had closed by ``cutoff_ms``."""
    step = TIMEFRAME_MS[timeframe]
    return {ts: bar for ts, bar in bars.items() if ts + step <= cutoff_ms}


def truth_diff(stored: dict[int, Values], expected: dict[int, Values], *, limit: int = 5) -> dict:
    """What differs between stored and expected bars, with ISO times; {} when they are equal."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    wrong = sorted(ts for ts in set(stored) & set(expected) if stored[ts] != expected[ts])
    iso = lambda ts: datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat()  # noqa: E731
    diff = {}
    if missing:
        diff["missing"] = (len(missing), [iso(t) for t in missing[:limit]])
    if extra:
        diff["invented"] = (len(extra), [iso(t) for t in extra[:limit]])
    if wrong:
        diff["wrong"] = (len(wrong), [(iso(t), stored[t], expected[t]) for t in wrong[:limit]])
    return diff


def closed_bars_diff(store: Store, series: list[Series], cutoff: int | dict[str, int]) -> dict:
    """Per series that differs: its stored bars that closed by the cutoff (per exchange, or one
    for all), from the first stored bar on, compared with truth; {} when all are final."""
    problems: dict = {}
    for key in series:
        bars = store.get(key)
        if not bars:
            problems[key] = "nothing stored"
            continue
        end = cutoff[key[0]] if isinstance(cutoff, dict) else cutoff
        diff = truth_diff(closed_by(values_of(bars), key[2], end), truth_bars(key, min(bars), end, now=end))
        if diff:
            problems[key] = diff
    return problems


def wait_all_final(read_store: Callable[[], Store], series: list[Series], timeout: float,
                   lag_ms: int = 10_000, through_ms: int | None = None) -> Store:
    """Polls until every bar that closed more than ``lag_ms`` ago is stored with final values,
    from each series' first stored bar on; with ``through_ms``, not before that is checked too."""
    deadline = time.monotonic() + timeout
    while True:
        store = read_store()
        cutoff = now_ms() - lag_ms
        problems = closed_bars_diff(store, series, cutoff)
        if not problems and (through_ms is None or cutoff >= through_ms):
            return store
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout} s, closed bars still differ from truth: {problems}")
        time.sleep(1)


def last_cycle_starts(collector: Collector, exchanges: Iterable[str]) -> dict[str, int]:
    """Per exchange, when its last LIVE cycle started (minus a second): bars closed by then
    were fetched with final values."""
    starts = {}
    for exchange in exchanges:
        last = collector.events("live_cycle_complete", exchange=exchange)[-1]
        starts[exchange] = parse_iso_utc(last["ts"]) - last["duration_ms"] - 1000
    return starts


def series_list(exchanges: dict[str, list[dict]]) -> list[Series]:
    return [(exchange, entry["symbol"], tf) for exchange, entries in exchanges.items()
            for entry in entries for tf in entry["timeframes"]]


def in_range(bars: dict[int, Any], start_ms: int, end_ms: int) -> dict[int, Any]:
    return {ts: bar for ts, bar in bars.items() if start_ms <= ts < end_ms}


def sim_candle_pages(sim: Any, exchange: str) -> list[tuple[Series, str | None, dict[int, list], set[int]]]:
    """Replays every candle page the simulator served to ``exchange`` (binance or okx).

    Returns, per page: its series, its fault kind, its bars as served without the fault
    (open time -> row), and the open times of the bars the fault corrupted. The simulator's
    dialects are pure functions of (query, exchange clock), so the replay is exact.
    """
    from simulator.dialects import DIALECTS, Request, mutate_rows
    from simulator.faults import BAD_ROW_KINDS

    dialect = DIALECTS[exchange]()
    pages = []
    for record in sim.requests:
        if record.exchange != exchange or record.endpoint not in dialect.candle_endpoints:
            continue
        now = int(record.time * 1000)
        kind = record.fault if record.fault in BAD_ROW_KINDS else None
        if record.fault and kind is None:
            continue                                  # a wire fault: no candles were served
        clean = PAGE_ROWS[exchange](dialect.handle(Request(record.endpoint, dict(record.query), now)).body)
        served = clean
        if kind:
            served = PAGE_ROWS[exchange](dialect.handle(Request(
                record.endpoint, dict(record.query), now, partial(mutate_rows, kind))).body)
        by_ts = {int(row[0]): row for row in clean}
        intact = {int(row[0]) for row in served if by_ts.get(int(row[0])) == row}
        symbol_id = record.query.get("symbol") or record.query.get("instId")
        timeframe = record.query.get("interval") or record.query.get("bar", "1m").lower()
        series = (exchange, dialect.markets[symbol_id].symbol, timeframe)
        pages.append((series, kind, by_ts, set(by_ts) - intact))
    return pages


# The rows of a served candle page, by dialect (the shape each exchange answers with).
PAGE_ROWS: dict[str, Callable[[Any], list[list]]] = {
    "binance": lambda body: body, "binanceusdm": lambda body: body, "gate": lambda body: body,
    "okx": lambda body: body["data"], "bitget": lambda body: body["data"], "kucoin": lambda body: body["data"],
    "kraken": lambda body: next(v for k, v in body["result"].items() if k != "last"),
    "coinbase": lambda body: body["candles"], "bybit": lambda body: body["result"]["list"]}


def events_by(collector: Collector, name: str, *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    """Events of one kind grouped by the given fields, e.g. ("exchange", "symbol")."""
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for line in collector.events(name):
        grouped.setdefault(tuple(line.get(k) for k in keys), []).append(line)
    return grouped


def metrics(collector: Collector) -> dict[str, float]:
    """The supervisor's ``/metrics`` as {series with labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.health_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def quiet_in(series: list[Series], start_ms: int, end_ms: int) -> list[int]:
    """Open times of the minutes in [start, end) without a trade on one of the series' markets
    (they have no bar to store)."""
    from simulator import quiet_minutes

    return sorted({ts for exchange, symbol, _ in series for ts in quiet_minutes(exchange, symbol, start_ms, end_ms)})


def wait_for_trading_minutes(series: list[Series], *, before: int = 1, after: int = 2) -> None:
    """Sleep until the ``before`` minutes before this one, this one and the ``after`` after it
    all have trades on every series, so that a LIVE run started now sees a closed and an open
    bar. Quiet minutes are rare (two in eight hours, a 15-minute block in two weeks)."""
    while True:
        minute = floor_to(now_ms(), MINUTE_MS)
        quiet = quiet_in(series, minute - before * MINUTE_MS, minute + (after + 1) * MINUTE_MS)
        if not quiet:
            return
        time.sleep(max(0.0, (quiet[-1] + (before + 1) * MINUTE_MS - now_ms()) / 1000))


def newest_bars(path: Path, series: list[Series], at_least: int = 1) -> dict[Series, tuple[int, StoredBar]] | None:
    """Per series, the newest stored bar (the open one), once every series has ``at_least`` bars."""
    store = sqlite_latest(path)
    if not all(len(store.get(key, {})) >= at_least for key in series):
        return None
    return {key: max(store[key].items()) for key in series}


def rewritten(path: Path, series: list[Series], earlier: dict, after_ms: int) -> dict | None:
    """The newest bars, once each was written at least ``after_ms`` after ``earlier``'s."""
    newest = newest_bars(path, series)
    if newest and all(newest[k][1].ingested_at >= earlier[k][1].ingested_at + after_ms for k in series):
        return newest
    return None


def wait_until_the_open_bar_ends_final(path: Path, series: list[Series]) -> int:
    """Wait until the bar open now (or, if a market has no trade this minute, the next minute
    with trades on every series) is stored for every series, then until its stored version is
    the exchange's final one (up to a minute and a half); its open time."""
    open_ts = floor_to(now_ms(), MINUTE_MS)
    while quiet_in(series, open_ts, open_ts + MINUTE_MS):
        open_ts += MINUTE_MS
    poll(lambda: all(open_ts in sqlite_latest(path).get(key, {}) for key in series),
         30 + max(0, open_ts - now_ms()) / 1000, "the open bar stored")

    def final() -> bool:
        store = sqlite_latest(path)
        return all(values_of(store[key]).get(open_ts) == truth_bars(key, open_ts, open_ts + 1).get(open_ts)
                   for key in series)

    poll(final, 90, "the bar that was open stored with its final values")
    return open_ts


def wait_until_the_open_bars_are_stored(read_store: Callable[[], Store], series: list[Series], timeout: float,
                                        *, closes_in_ms: int = 10_000) -> Store:
    """Wait until every series' newest stored bar is the one open now, at least ``closes_in_ms``
    before this minute ends (sleeping out a quiet minute, or a minute's last seconds, first);
    the store. A run stopped then stops with an open bar stored on every series."""
    deadline = time.monotonic() + timeout
    while True:
        now = now_ms()
        minute = floor_to(now, MINUTE_MS)
        if now + closes_in_ms > minute + MINUTE_MS or quiet_in(series, minute, minute + MINUTE_MS):
            time.sleep((minute + MINUTE_MS - now) / 1000)
            deadline = time.monotonic() + timeout
            continue
        store = read_store()
        if all(store.get(key) and max(store[key]) == floor_to(now, TIMEFRAME_MS[key[2]]) for key in series):
            return store
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for the open bar of every series")
        time.sleep(0.25)
