"""Tests for the BigQuery REST fake, driven through the real google-cloud-bigquery client."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery import DEFAULT_RETRY

from tests.fakes.bigquery_fake import BigQueryFake

PROJECT = "test-project"
DATASET = "market_data"
TABLE = "market_data_ohlcv"
TABLE_ID = f"{PROJECT}.{DATASET}.{TABLE}"
UTC = dt.UTC
SCHEMA = [
    bigquery.SchemaField("timestamp", "TIMESTAMP"),
    bigquery.SchemaField("exchange", "STRING"),
    bigquery.SchemaField("symbol", "STRING"),
    bigquery.SchemaField("timeframe", "STRING"),
    bigquery.SchemaField("open", "FLOAT"),
    bigquery.SchemaField("high", "FLOAT"),
    bigquery.SchemaField("low", "FLOAT"),
    bigquery.SchemaField("close", "FLOAT"),
    bigquery.SchemaField("volume", "FLOAT"),
    bigquery.SchemaField("ingested_at", "TIMESTAMP"),
]
LATEST_VIEW_SQL = f"""
SELECT timestamp, exchange, symbol, timeframe, open, high, low, close, volume, ingested_at
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY exchange, symbol, timeframe, timestamp
                                   ORDER BY ingested_at DESC) AS rn
      FROM `{TABLE_ID}`)
WHERE rn = 1
"""
SHORT_RETRY = DEFAULT_RETRY.with_deadline(5)
# Same policy with a small first backoff (default 1 s), to keep the suite fast.
FAST_RETRY = SHORT_RETRY.with_delay(initial=0.05, maximum=0.2)


@pytest.fixture
def fake() -> Iterator[BigQueryFake]:
    server = BigQueryFake().start()
    yield server
    server.stop()


@pytest.fixture
def client(fake: BigQueryFake, monkeypatch: pytest.MonkeyPatch) -> bigquery.Client:
    # The client reads BIGQUERY_EMULATOR_HOST when it is constructed.
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", fake.base_url)
    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials())


@pytest.fixture
def table(client: bigquery.Client) -> bigquery.Table:
    client.create_dataset(DATASET)
    table = bigquery.Table(TABLE_ID, schema=SCHEMA)
    table.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field="timestamp")
    table.clustering_fields = ["exchange", "symbol"]
    return client.create_table(table)


def candle(minute: int, close: float = 1.0, exchange: str = "binance", symbol: str = "BTC/USDT",
           ingested: str = "2024-01-02T00:00:00+00:00") -> dict[str, Any]:
    ts = dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=minute)
    return {"timestamp": ts.isoformat(), "exchange": exchange, "symbol": symbol, "timeframe": "1m",
            "open": 1.0, "high": 2.0, "low": 0.5, "close": close, "volume": 10.0,
            "ingested_at": ingested}


def insert_count(fake: BigQueryFake) -> int:
    return sum(1 for method, path in fake.requests if path.endswith("/insertAll"))


# --------------------------------------------------------------------------
# Datasets and tables
# --------------------------------------------------------------------------


def test_dataset_missing_is_404_and_duplicate_is_409(client: bigquery.Client) -> None:
    with pytest.raises(api_exceptions.NotFound, match="Dataset test-project:market_data"):
        client.get_dataset(DATASET)
    client.create_dataset(DATASET)
    assert client.get_dataset(DATASET).dataset_id == DATASET
    with pytest.raises(api_exceptions.Conflict):
        client.create_dataset(DATASET)
    client.create_dataset(DATASET, exists_ok=True)


def test_partitioned_clustered_table_round_trip(client: bigquery.Client, table: bigquery.Table,
                                                fake: BigQueryFake) -> None:
    fetched = client.get_table(TABLE_ID)
    assert fetched.time_partitioning.type_ == "DAY"
    assert fetched.time_partitioning.field == "timestamp"
    assert fetched.clustering_fields == ["exchange", "symbol"]
    assert [(f.name, f.field_type) for f in fetched.schema] == [(f.name, f.field_type) for f in SCHEMA]
    assert fake.table_resource(DATASET, TABLE)["type"] == "TABLE"
    with pytest.raises(api_exceptions.Conflict):
        client.create_table(bigquery.Table(TABLE_ID, schema=SCHEMA))
    with pytest.raises(api_exceptions.NotFound):
        client.get_table(f"{PROJECT}.{DATASET}.missing")


def test_additive_schema_update_allowed_retype_and_drop_rejected(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    table.schema = [*SCHEMA, bigquery.SchemaField("trades", "INTEGER")]
    updated = client.update_table(table, ["schema"])
    assert updated.schema[-1].name == "trades"
    assert client.insert_rows_json(TABLE_ID, [{**candle(0), "trades": 5}]) == []
    assert fake.rows(DATASET, TABLE)[0]["trades"] == 5

    retyped = client.get_table(TABLE_ID)
    retyped.schema = [bigquery.SchemaField("open", "STRING") if f.name == "open" else f
                      for f in retyped.schema]
    with pytest.raises(api_exceptions.BadRequest, match="open has changed type from FLOAT to STRING"):
        client.update_table(retyped, ["schema"])

    dropped = client.get_table(TABLE_ID)
    dropped.schema = dropped.schema[:-1]
    with pytest.raises(api_exceptions.BadRequest, match="trades is missing"):
        client.update_table(dropped, ["schema"])

    required = client.get_table(TABLE_ID)
    required.schema = [*required.schema, bigquery.SchemaField("x", "STRING", mode="REQUIRED")]
    with pytest.raises(api_exceptions.BadRequest, match="required"):
        client.update_table(required, ["schema"])


def test_update_with_stale_etag_fails(client: bigquery.Client, table: bigquery.Table) -> None:
    first = client.get_table(TABLE_ID)
    second = client.get_table(TABLE_ID)
    first.description = "first"
    client.update_table(first, ["description"])
    second.description = "second"
    with pytest.raises(api_exceptions.PreconditionFailed):
        client.update_table(second, ["description"])


# --------------------------------------------------------------------------
# Streaming inserts
# --------------------------------------------------------------------------


def test_insert_rows_json_records_insert_ids_without_dedup(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    rows = [candle(0), candle(1)]
    ids = ["binance|BTC/USDT|1m|0", "binance|BTC/USDT|1m|1"]
    assert client.insert_rows_json(TABLE_ID, rows, row_ids=ids, timeout=5, retry=SHORT_RETRY) == []
    assert client.insert_rows_json(TABLE_ID, rows[:1], row_ids=ids[:1], timeout=5) == []
    assert fake.insert_ids(DATASET, TABLE) == [ids[0], ids[1], ids[0]]
    assert [row_id for row_id, _ in fake.received_rows(DATASET, TABLE)] == [ids[0], ids[1], ids[0]]
    stored = fake.rows(DATASET, TABLE)
    assert len(stored) == 3
    assert stored[0]["timestamp"] == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert stored[0]["close"] == 1.0


def test_insert_rows_json_validates_like_bigquery(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    rows = [candle(0), {**candle(1), "bogus": 1}, {**candle(2), "volume": "lots"}]
    errors = client.insert_rows_json(TABLE_ID, rows)
    by_index = {e["index"]: e["errors"] for e in errors}
    assert by_index[0][0]["reason"] == "stopped"
    assert by_index[1][0] == {"reason": "invalid", "location": "bogus", "debugInfo": "",
                              "message": "no such field: bogus."}
    assert by_index[2][0]["reason"] == "invalid" and by_index[2][0]["location"] == "volume"
    assert fake.rows(DATASET, TABLE) == []
    assert len(fake.received_rows(DATASET, TABLE)) == 3

    errors = client.insert_rows_json(TABLE_ID, rows[:2], ignore_unknown_values=True)
    assert errors == [] and len(fake.rows(DATASET, TABLE)) == 2

    errors = client.insert_rows_json(TABLE_ID, rows, skip_invalid_rows=True)
    assert [e["index"] for e in errors] == [1, 2]
    assert len(fake.rows(DATASET, TABLE)) == 3

    bad_ts = client.insert_rows_json(TABLE_ID, [{**candle(0), "timestamp": "yesterday"}])
    assert "Could not parse 'yesterday' as a timestamp" in bad_ts[0]["errors"][0]["message"]


def test_row_error_fault_marks_rows_invalid_and_others_stopped(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    fake.add_fault("row_errors", rows=[1], count=1)
    errors = client.insert_rows_json(TABLE_ID, [candle(0), candle(1), candle(2)])
    reasons = {e["index"]: e["errors"][0]["reason"] for e in errors}
    assert reasons == {0: "stopped", 1: "invalid", 2: "stopped"}
    assert fake.rows(DATASET, TABLE) == []

    fake.add_fault("row_errors", predicate=lambda row: row["close"] > 5, message="too high")
    errors = client.insert_rows_json(TABLE_ID, [candle(0), candle(1, close=9.0)])
    assert errors[1]["errors"][0]["message"] == "too high"
    fake.clear_faults()
    assert client.insert_rows_json(TABLE_ID, [candle(0), candle(1, close=9.0)]) == []


def test_503_count_fault_is_retried_by_client(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    fake.add_fault("http_503", op="insertAll", count=1)
    assert client.insert_rows_json(TABLE_ID, [candle(0)], row_ids=["a"], retry=SHORT_RETRY) == []
    assert insert_count(fake) == 2
    assert fake.insert_ids(DATASET, TABLE) == ["a"]


def test_503_duration_fault_exhausts_retry_deadline(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    fake.add_fault("http_503", op="insertAll", duration=60)
    started = time.monotonic()
    with pytest.raises(api_exceptions.RetryError) as excinfo:
        client.insert_rows_json(TABLE_ID, [candle(0)], retry=DEFAULT_RETRY.with_deadline(2))
    assert isinstance(excinfo.value.cause, api_exceptions.ServiceUnavailable)
    # api_core gives up early when the next (jittered) backoff would overshoot
    # the deadline, so only an upper bound on the elapsed time holds.
    assert time.monotonic() - started < 2.5
    assert insert_count(fake) >= 2
    with pytest.raises(api_exceptions.ServiceUnavailable) as unavailable:
        client.insert_rows_json(TABLE_ID, [candle(0)], retry=None)
    assert unavailable.value.errors[0]["reason"] == "backendError"


def test_timeout_fault_then_retry_succeeds(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    fake.add_fault("timeout", op="insertAll", count=1, hold=10)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.insert_rows_json(TABLE_ID, [candle(0)], timeout=0.3, retry=None)
    fake.add_fault("timeout", op="insertAll", count=1, hold=10)
    assert client.insert_rows_json(TABLE_ID, [candle(0)], timeout=0.3, retry=FAST_RETRY) == []
    assert len(fake.rows(DATASET, TABLE)) == 1


def test_fault_after_processing_duplicates_rows_on_retry(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    fake.add_fault("http_500", op="insertAll", count=1, after_processing=True)
    assert client.insert_rows_json(TABLE_ID, [candle(0)], row_ids=["same"], retry=FAST_RETRY) == []
    assert fake.insert_ids(DATASET, TABLE) == ["same", "same"]


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


@pytest.fixture
def populated(client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    rows = [
        candle(0, close=1.0, ingested="2024-01-02T00:00:00Z"),
        candle(0, close=2.0, ingested="2024-01-02T00:05:00Z"),  # re-fetch of minute 0
        candle(1, close=3.0),
        candle(0, close=4.0, exchange="kraken", symbol="BTC/USD"),
    ]
    assert client.insert_rows_json(TABLE_ID, rows) == []
    view = bigquery.Table(f"{PROJECT}.{DATASET}.ohlcv_latest")
    view.view_query = LATEST_VIEW_SQL
    client.create_table(view)


@pytest.mark.usefixtures("populated")
def test_latest_row_view_returns_newest_ingestion(client: bigquery.Client, fake: BigQueryFake) -> None:
    view = client.get_table(f"{PROJECT}.{DATASET}.ohlcv_latest")
    assert view.table_type == "VIEW"
    assert {f.name: f.field_type for f in view.schema}["timestamp"] == "TIMESTAMP"
    rows = list(client.query(
        f"SELECT * FROM `{PROJECT}.{DATASET}.ohlcv_latest` ORDER BY exchange, timestamp").result())
    assert [(r["exchange"], r["timestamp"].minute, r["close"]) for r in rows] == [
        ("binance", 0, 2.0), ("binance", 1, 3.0), ("kraken", 0, 4.0)]
    assert rows[0]["ingested_at"] == dt.datetime(2024, 1, 2, 0, 5, tzinfo=UTC)
    assert fake.query_log[-1].error is None


@pytest.mark.usefixtures("populated")
def test_group_by_max_timestamp_returns_datetimes(client: bigquery.Client) -> None:
    sql = (f"SELECT exchange, symbol, timeframe, MAX(timestamp) AS last_ts FROM `{TABLE_ID}` "
           "GROUP BY exchange, symbol, timeframe ORDER BY exchange")
    result = client.query(sql).result()
    assert [f.field_type for f in result.schema] == ["STRING", "STRING", "STRING", "TIMESTAMP"]
    rows = [tuple(r.values()) for r in result]
    assert rows == [
        ("binance", "BTC/USDT", "1m", dt.datetime(2024, 1, 1, 0, 1, tzinfo=UTC)),
        ("kraken", "BTC/USD", "1m", dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC)),
    ]


@pytest.mark.usefixtures("populated")
def test_query_parameters_and_timestamp_literals(client: bigquery.Client) -> None:
    config = bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("exchange", "STRING", "binance"),
        bigquery.ScalarQueryParameter("since", "TIMESTAMP", dt.datetime(2024, 1, 1, 0, 1, tzinfo=UTC)),
    ])
    sql = (f"SELECT COUNT(*) AS n, MAX(close) AS top FROM `{TABLE_ID}` "
           "WHERE exchange = @exchange AND timestamp >= @since")
    assert [tuple(r.values()) for r in client.query(sql, job_config=config).result()] == [(1, 3.0)]

    literal = (f"SELECT COUNT(*) AS n FROM `{TABLE_ID}` "
               "WHERE timestamp >= TIMESTAMP('2024-01-01T00:01:00+00:00') "
               "AND ingested_at < TIMESTAMP '2024-01-03 00:00:00 UTC'")
    assert next(iter(client.query(literal).result()))["n"] == 1
    # A bare string compared with a TIMESTAMP column is coerced, as in BigQuery.
    coerced = f"SELECT COUNT(*) AS n FROM `{TABLE_ID}` WHERE timestamp < '2024-01-01 00:01:00'"
    assert next(iter(client.query(coerced).result()))["n"] == 3


@pytest.mark.usefixtures("populated")
def test_fast_path_jobs_query_and_select_except(client: bigquery.Client, fake: BigQueryFake) -> None:
    sql = (f"SELECT * EXCEPT (rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY exchange "
           f"ORDER BY timestamp DESC, ingested_at DESC) AS rn FROM `{TABLE_ID}`) WHERE rn = 1 "
           "ORDER BY exchange")
    rows = list(client.query_and_wait(sql))
    assert ("POST", f"/bigquery/v2/projects/{PROJECT}/queries") in fake.requests
    assert [r["close"] for r in rows] == [3.0, 4.0]
    assert "rn" not in rows[0].keys()
    assert isinstance(rows[0]["timestamp"], dt.datetime)


def test_invalid_sql_is_bad_request_not_a_hang(client: bigquery.Client, table: bigquery.Table) -> None:
    with pytest.raises(api_exceptions.BadRequest, match="invalidQuery|syntax"):
        client.query(f"SELECT FROM WHERE `{TABLE_ID}`").result()
    with pytest.raises(api_exceptions.BadRequest):
        client.query_and_wait(f"SELECT exchange FROM `{TABLE_ID}` QUALIFY x")
    with pytest.raises(api_exceptions.NotFound, match="market_data.nope"):
        client.query(f"SELECT * FROM `{PROJECT}.{DATASET}.nope`").result()


def test_query_fault_is_retried(client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    fake.add_fault("http_500", op="query", count=1)
    job = client.query(f"SELECT COUNT(*) AS n FROM `{TABLE_ID}`", retry=FAST_RETRY)
    assert list(job.result())[0]["n"] == 0
    assert [r.status for r in fake.request_log if r.op == "query"][:2] == [500, 200]


@pytest.mark.usefixtures("populated")
def test_list_rows_pages_typed_values(client: bigquery.Client) -> None:
    rows = list(client.list_rows(TABLE_ID, page_size=2))
    assert len(rows) == 4
    assert rows[3]["timestamp"] == dt.datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------
# Load jobs
# --------------------------------------------------------------------------


def load_config() -> bigquery.LoadJobConfig:
    return bigquery.LoadJobConfig(
        schema=SCHEMA, write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON)


def test_small_load_uses_multipart(client: bigquery.Client, table: bigquery.Table,
                                   fake: BigQueryFake) -> None:
    job = client.load_table_from_json([candle(i) for i in range(10)], TABLE_ID, job_config=load_config())
    assert job.result().output_rows == 10
    uploads = [r for r in fake.request_log if r.path.startswith("/upload/")]
    assert [r.query["uploadType"] for r in uploads] == [["multipart"]]
    assert len(fake.rows(DATASET, TABLE)) == 10


def test_large_load_uses_resumable_upload(client: bigquery.Client, table: bigquery.Table,
                                          fake: BigQueryFake) -> None:
    # >= 5 MiB of NDJSON (the client's _MAX_MULTIPART_SIZE) switches to resumable.
    base = candle(0)
    rows = [{**base, "timestamp": f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"}
            for i in range(25_000)]
    job = client.load_table_from_json(rows, TABLE_ID, job_config=load_config())
    assert job.result().output_rows == 25_000
    assert int(job._properties["statistics"]["load"]["inputFileBytes"]) >= 5 * 1024 * 1024
    methods = [m for m, p in fake.requests if p.startswith("/upload/")]
    assert methods == ["POST", "PUT"]
    assert client.get_table(TABLE_ID).num_rows == 25_000


def test_resumable_upload_in_chunks(client: bigquery.Client, table: bigquery.Table,
                                    fake: BigQueryFake, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file object without size always goes resumable; shrink the chunk size
    # (normally 100 MiB) so the upload spans several Content-Range PUTs.
    monkeypatch.setattr("google.cloud.bigquery.client._DEFAULT_CHUNKSIZE", 256 * 1024)
    data = "\n".join(json.dumps(candle(i)) for i in range(3000)).encode()
    job = client.load_table_from_file(io.BytesIO(data), TABLE_ID, job_config=load_config())
    assert job.result().output_rows == 3000
    puts = [m for m, p in fake.requests if m == "PUT"]
    assert len(puts) == len(data) // (256 * 1024) + 1
    assert len(fake.rows(DATASET, TABLE)) == 3000


def test_load_with_bad_rows_fails_job_and_writes_nothing(
        client: bigquery.Client, table: bigquery.Table, fake: BigQueryFake) -> None:
    rows = [candle(0), {**candle(1), "volume": "lots"}]
    job = client.load_table_from_json(rows, TABLE_ID, job_config=load_config())
    with pytest.raises(api_exceptions.BadRequest, match="too many errors"):
        job.result()
    assert job.error_result["reason"] == "invalid"
    assert fake.rows(DATASET, TABLE) == []


def test_load_fault_is_retried_by_upload(client: bigquery.Client, table: bigquery.Table,
                                         fake: BigQueryFake) -> None:
    fake.add_fault("http_503", op="load", count=1)
    job = client.load_table_from_json([candle(0)], TABLE_ID, job_config=load_config())
    assert job.result().output_rows == 1


# --------------------------------------------------------------------------
# Script entry point
# --------------------------------------------------------------------------


def test_runs_as_script_until_interrupted() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.bigquery_fake", "--port", "0"],
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = line.split()[4]
        response = requests.get(f"{url}/bigquery/v2/projects/p/datasets/missing", timeout=5)
        assert response.status_code == 404
        assert response.json()["error"]["errors"][0]["reason"] == "notFound"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
