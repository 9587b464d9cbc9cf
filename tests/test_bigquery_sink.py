"""The BigQuery sink against a mocked ``google.cloud.bigquery.Client``."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from core.series import OhlcvRow
from worker.errors import SinkRejected, SinkUnavailable
from worker.sinks.bigquery import SCHEMA, STREAM_BATCH_ROWS, BigQuerySink, insert_id

TS = 1_700_000_040_000
EXPECTED_COLUMNS = {"timestamp": "TIMESTAMP", "exchange": "STRING", "symbol": "STRING",
                    "timeframe": "STRING", "open": "FLOAT", "high": "FLOAT", "low": "FLOAT",
                    "close": "FLOAT", "volume": "FLOAT", "ingested_at": "TIMESTAMP"}


def row(ts: int = TS, close: float = 101.5) -> OhlcvRow:
    return OhlcvRow(ts, "binance", "BTC/USDT", "1m", 100.0, 102.0, 99.5, close, 12.25, TS + 61_000)


def make_sink(client: MagicMock, **kwargs) -> BigQuerySink:
    client.project = "proj"
    return BigQuerySink(project="proj", dataset="market_data", client_factory=lambda: client,
                        request_timeout_s=7, retry_deadline_s=20, **kwargs)


def test_bigquery_insert() -> None:
    client = MagicMock(spec=bigquery.Client)
    client.insert_rows_json.return_value = []
    sink = make_sink(client)
    result = sink.write([row()])
    assert result.written == 1 and result.rejected == []

    (table, payload), kwargs = client.insert_rows_json.call_args
    assert table == "proj.market_data.market_data_ohlcv"
    assert payload == [{"timestamp": "2023-11-14T22:14:00.000Z", "exchange": "binance",
                        "symbol": "BTC/USDT", "timeframe": "1m", "open": 100.0, "high": 102.0,
                        "low": 99.5, "close": 101.5, "volume": 12.25,
                        "ingested_at": "2023-11-14T22:15:01.000Z"}]
    assert set(payload[0]) == set(EXPECTED_COLUMNS)
    assert {f.name: f.field_type for f in SCHEMA} == EXPECTED_COLUMNS
    assert kwargs["timeout"] == 7 and kwargs["retry"].deadline == 20
    # a retried row carries the same insertId; a changed bar a new one
    sink.write([row()])
    first_ids = client.insert_rows_json.call_args_list[0].kwargs["row_ids"]
    assert client.insert_rows_json.call_args_list[1].kwargs["row_ids"] == first_ids
    assert insert_id(row(close=101.6)) != first_ids[0]
    assert insert_id(row()._replace(ingested_at=0)) == first_ids[0]


def test_batches_stay_within_request_limits() -> None:
    client = MagicMock(spec=bigquery.Client)
    client.insert_rows_json.return_value = []
    rows = [row(TS + k * 60_000) for k in range(1234)]
    assert make_sink(client).write(rows).written == 1234
    sizes = [len(call.args[1]) for call in client.insert_rows_json.call_args_list]
    assert sizes == [STREAM_BATCH_ROWS, STREAM_BATCH_ROWS, 234]


def test_per_row_errors_are_counted_and_stopped_rows_resent() -> None:
    client = MagicMock(spec=bigquery.Client)
    client.insert_rows_json.side_effect = [
        [{"index": 1, "errors": [{"reason": "invalid", "message": "bad value"}]},
         {"index": 0, "errors": [{"reason": "stopped", "message": ""}]},
         {"index": 2, "errors": [{"reason": "stopped", "message": ""}]}],
        [],
    ]
    rows = [row(TS), row(TS + 60_000), row(TS + 120_000)]
    result = make_sink(client).write(rows)
    assert result.written == 2
    assert [(r.timestamp, reason) for r, reason in result.rejected] == [(TS + 60_000, "invalid: bad value")]
    resent = client.insert_rows_json.call_args_list[1]
    assert [r["timestamp"] for r in resent.args[1]] == ["2023-11-14T22:14:00.000Z", "2023-11-14T22:16:00.000Z"]


@pytest.mark.parametrize("error, expected", [
    (gexc.ServiceUnavailable("503"), SinkUnavailable),
    (gexc.InternalServerError("500"), SinkUnavailable),
    (gexc.Forbidden("quota", errors=[{"reason": "quotaExceeded"}]), SinkUnavailable),
    (gexc.Forbidden("denied", errors=[{"reason": "accessDenied"}]), SinkRejected),
    (gexc.BadRequest("bad"), SinkRejected),
    (gexc.NotFound("no table"), SinkRejected),
])
def test_client_errors_are_translated(error, expected) -> None:
    client = MagicMock(spec=bigquery.Client)
    client.insert_rows_json.side_effect = error
    with pytest.raises(expected):
        make_sink(client).write([row()])


def test_ensure_creates_partitioned_clustered_table_and_latest_view() -> None:
    client = MagicMock(spec=bigquery.Client)
    created = {}

    def create_table(table, exists_ok, timeout):
        created[table.table_id] = table
        return table
    client.create_table.side_effect = create_table
    make_sink(client).ensure()
    table = created["market_data_ohlcv"]
    assert table.time_partitioning.type_ == "DAY" and table.time_partitioning.field == "timestamp"
    assert table.clustering_fields == ["exchange", "symbol"]
    view = created["market_data_ohlcv_latest"]
    assert "ROW_NUMBER() OVER (PARTITION BY exchange, symbol, timeframe, timestamp" in view.view_query
    assert "ORDER BY ingested_at DESC" in view.view_query
    client.create_dataset.assert_called_once()


def test_ensure_adds_missing_columns_without_touching_existing_ones() -> None:
    client = MagicMock(spec=bigquery.Client)
    old = bigquery.Table("proj.market_data.market_data_ohlcv", schema=SCHEMA[:-1])

    def create_table(table, exists_ok, timeout):
        return old if table.table_id == "market_data_ohlcv" else table
    client.create_table.side_effect = create_table
    make_sink(client).ensure()
    updated, fields = client.update_table.call_args_list[0].args
    assert fields == ["schema"]
    assert [f.name for f in updated.schema] == [f.name for f in SCHEMA]
    assert updated.schema[-1].mode == "NULLABLE" and updated.schema[0].mode == "REQUIRED"


def test_history_mode_uses_load_jobs() -> None:
    client = MagicMock(spec=bigquery.Client)
    make_sink(client, bulk=True).write([row(TS + k * 60_000) for k in range(10)])
    client.insert_rows_json.assert_not_called()
    rows, table = client.load_table_from_json.call_args.args
    assert len(rows) == 10 and table == "proj.market_data.market_data_ohlcv"
    config = client.load_table_from_json.call_args.kwargs["job_config"]
    assert config.write_disposition == "WRITE_APPEND"
    client.load_table_from_json.return_value.result.assert_called_once()
