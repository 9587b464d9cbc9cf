"""Value handling for the BigQuery fake: schemas, timestamps, row validation.

Kept apart from the HTTP and SQL code because all three layers need the same
answers to "is this a valid TIMESTAMP?" and "how does BigQuery put this value
on the wire?".  Storage representation (what lives in SQLite):

* TIMESTAMP -> int microseconds since the Unix epoch (so MAX/ORDER BY work);
* INTEGER/BOOLEAN -> int; FLOAT/NUMERIC/BIGNUMERIC -> float;
* DATE/DATETIME/TIME/STRING/BYTES/GEOGRAPHY/JSON -> normalised text;
* RECORD and REPEATED fields -> JSON text of their storage values.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_MICROS_PER_DAY = 86_400_000_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# BigQuery accepts standard-SQL spellings but reports the legacy names in
# tables.get, so everything is canonicalised to the legacy spelling.
_TYPE_ALIASES = {
    "INT64": "INTEGER",
    "FLOAT64": "FLOAT",
    "BOOL": "BOOLEAN",
    "STRUCT": "RECORD",
}
KNOWN_TYPES = frozenset(
    "STRING BYTES INTEGER FLOAT NUMERIC BIGNUMERIC BOOLEAN TIMESTAMP DATE TIME "
    "DATETIME GEOGRAPHY JSON RECORD INTERVAL RANGE".split()
)
_SQLITE_AFFINITY = {
    "TIMESTAMP": "INTEGER",
    "INTEGER": "INTEGER",
    "BOOLEAN": "INTEGER",
    "FLOAT": "REAL",
    "NUMERIC": "REAL",
    "BIGNUMERIC": "REAL",
}
_TIMESTAMP_FORMAT_HINT = (
    "Required format is YYYY-MM-DD HH:MM[:SS[.SSSSSS]] or "
    "YYYY/MM/DD HH:MM[:SS[.SSSSSS]]"
)
_TS_RE = re.compile(
    r"""^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})
    (?:(?:[Tt]|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?
    \s*(?:(Z|z|UTC|utc)|([+-])(\d{1,2})(?::?(\d{2}))?)?\s*$""",
    re.X,
)
_DATETIME_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:[Tt]|\s+)(\d{1,2}):(\d{2})"
    r"(?::(\d{2})(?:\.(\d{1,6}))?)?)?\s*$"
)
_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*$")
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER_RE = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


class ApiError(Exception):
    """An error that the fake reports the way BigQuery does (JSON error body)."""

    _STATUS_NAMES = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS",
        412: "FAILED_PRECONDITION",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }

    def __init__(
        self, status: int, reason: str, message: str, location: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.location = (
            status,
            reason,
            message,
            location,
        )

    def error_proto(self) -> dict[str, Any]:
        """The ErrorProto used in errors[], job errorResult and insertErrors."""
        proto = {"reason": self.reason, "message": self.message, "domain": "global"}
        if self.location:
            proto["location"] = self.location
            proto["locationType"] = "other"
        return proto

    def body(self) -> dict[str, Any]:
        """Google's JSON error envelope, parsed by google.api_core.exceptions."""
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [self.error_proto()],
                "status": self._STATUS_NAMES.get(self.status, "UNKNOWN"),
            }
        }


def invalid(message: str, location: str | None = None) -> ApiError:
    return ApiError(400, "invalid", message, location)


def not_found(message: str) -> ApiError:
    return ApiError(404, "notFound", f"Not found: {message}")


# --------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------


def canonical_type(type_name: str) -> str:
    upper = (type_name or "").upper()
    return _TYPE_ALIASES.get(upper, upper)


def normalize_fields(fields: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate a schema and return it with canonical types and explicit modes."""
    seen: set = set()
    out = []
    for field in fields:
        name = field.get("name") or ""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]{0,299}", name):
            raise invalid(f"Invalid field name \"{name}\". Fields must contain only "
                          "letters, numbers, and underscores, start with a letter "
                          "or underscore, and be at most 300 characters long.")
        if name.lower() in seen:
            raise invalid(f"Field {name} already exists in schema")
        seen.add(name.lower())
        norm = dict(field)
        norm["type"] = canonical_type(field.get("type", ""))
        if norm["type"] not in KNOWN_TYPES:
            raise invalid(f"Invalid value for type: {field.get('type')} is not a valid value")
        norm["mode"] = (field.get("mode") or "NULLABLE").upper()
        if norm["type"] == "RECORD":
            norm["fields"] = normalize_fields(field.get("fields") or [])
        out.append(norm)
    return out


def find_field(fields: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    lower = name.lower()
    return next((f for f in fields if f["name"].lower() == lower), None)


def sqlite_affinity(field: Mapping[str, Any]) -> str:
    if field.get("mode") == "REPEATED":
        return "TEXT"
    return _SQLITE_AFFINITY.get(field["type"], "TEXT")


def check_schema_update(
    table_name: str, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> None:
    """Reject non-additive schema changes the way tables.patch/update does.

    BigQuery allows appending NULLABLE/REPEATED columns and relaxing
    REQUIRED -> NULLABLE; dropping, renaming or retyping a column is a 400.
    """
    prefix = f"Provided Schema does not match Table {table_name}."
    for old_field in old:
        new_field = find_field(new, old_field["name"])
        if new_field is None:
            raise invalid(f"{prefix} Field {old_field['name']} is missing in new schema")
        if new_field["type"] != old_field["type"]:
            raise invalid(
                f"{prefix} Field {old_field['name']} has changed type from "
                f"{old_field['type']} to {new_field['type']}"
            )
        old_mode, new_mode = old_field["mode"], new_field["mode"]
        if old_mode != new_mode and not (old_mode == "REQUIRED" and new_mode == "NULLABLE"):
            raise invalid(
                f"{prefix} Field {old_field['name']} has changed mode from "
                f"{old_mode} to {new_mode}"
            )
        if old_field["type"] == "RECORD":
            check_schema_update(table_name, old_field["fields"], new_field["fields"])
    for new_field in new:
        if find_field(old, new_field["name"]) is None and new_field["mode"] == "REQUIRED":
            raise invalid(
                f"{prefix} Cannot add required fields to an existing schema. "
                f"(field: {new_field['name']})"
            )


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def parse_timestamp(text: str) -> int:
    """Parse a BigQuery timestamp string into microseconds since the epoch."""
    match = _TS_RE.match(text)
    if not match:
        raise ValueError(f"Could not parse '{text}' as a timestamp. {_TIMESTAMP_FORMAT_HINT}")
    year, month, day, hour, minute, second, frac, utc, sign, off_h, off_m = match.groups()
    try:
        days = dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError(f"Invalid timestamp: '{text}'") from None
    clock = [int(hour or 0), int(minute or 0), int(second or 0)]
    if clock[0] > 23 or clock[1] > 59 or clock[2] > 59:
        raise ValueError(f"Invalid timestamp: '{text}'")
    micros = days * _MICROS_PER_DAY + ((clock[0] * 60 + clock[1]) * 60 + clock[2]) * 1_000_000
    micros += int((frac or "0").ljust(6, "0"))
    if sign:
        offset = (int(off_h) * 60 + int(off_m or 0)) * 60_000_000
        micros -= offset if sign == "+" else -offset
    return micros


def micros_from_seconds(seconds: float) -> int:
    return int(round(seconds * 1_000_000))


def micros_to_datetime(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(micros))


def datetime_to_micros(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_timestamp(micros: int) -> str:
    """Canonical text form, as BigQuery prints timestamps in messages."""
    return micros_to_datetime(micros).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def timestamp_value(value: Any) -> int:
    """Coerce any accepted TIMESTAMP input into microseconds.

    Streaming/load JSON accepts strings in the canonical formats and numbers,
    which BigQuery interprets as (fractional) seconds since the epoch.
    """
    if isinstance(value, bool):
        raise ValueError(f"Could not parse '{json.dumps(value)}' as a timestamp. {_TIMESTAMP_FORMAT_HINT}")
    if isinstance(value, (int, float)):
        return micros_from_seconds(value)
    if isinstance(value, dt.datetime):
        return datetime_to_micros(value)
    if isinstance(value, str):
        if _NUMBER_RE.match(value):
            return micros_from_seconds(float(value))
        return parse_timestamp(value)
    raise ValueError(f"Could not parse '{value}' as a timestamp. {_TIMESTAMP_FORMAT_HINT}")


# --------------------------------------------------------------------------
# Row coercion (insertAll / load jobs)
# --------------------------------------------------------------------------


def _bad(kind: str, value: Any) -> ValueError:
    shown = value if isinstance(value, str) else json.dumps(value)
    return ValueError(f"Cannot convert value to {kind} (bad value): {shown}")


def _to_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad("integer", value)
    if isinstance(value, str):
        if not _INT_RE.match(value):
            raise _bad("integer", value)
        result = int(value)
    elif isinstance(value, float):
        if not value.is_integer():
            raise _bad("integer", value)
        result = int(value)
    else:
        result = value
    if not _INT64_MIN <= result <= _INT64_MAX:
        raise _bad("integer", value)
    return result


def _to_float(value: Any, kind: str = "floating point") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad(kind, value)
    if isinstance(value, str):
        special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf,
                   "inf": math.inf, "-inf": -math.inf, "+inf": math.inf}
        if value.strip().lower() in special:
            return special[value.strip().lower()]
        if not _NUMBER_RE.match(value):
            raise _bad(kind, value)
    return float(value)


def _to_boolean(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return int(value.strip().lower() in ("true", "1"))
    raise _bad("boolean", value)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    raise _bad("string", value)


def _to_date(value: Any) -> str:
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ValueError(f"Could not parse '{value}' as a date. Required format is YYYY-MM-DD") from None


def _to_datetime(value: Any) -> str:
    match = _DATETIME_RE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"Could not parse '{value}' as a datetime.")
    year, month, day, hour, minute, second, frac = match.groups()
    try:
        parsed = dt.datetime(int(year), int(month), int(day), int(hour or 0),
                             int(minute or 0), int(second or 0), int((frac or "0").ljust(6, "0")))
    except ValueError:
        raise ValueError(f"Invalid datetime: '{value}'") from None
    return parsed.isoformat()


def _to_time(value: Any) -> str:
    match = _TIME_RE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"Could not parse '{value}' as a time.")
    hour, minute, second, frac = match.groups()
    try:
        return dt.time(int(hour), int(minute), int(second or 0),
                       int((frac or "0").ljust(6, "0"))).isoformat()
    except ValueError:
        raise ValueError(f"Invalid time: '{value}'") from None


def _to_bytes(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad("bytes", value)
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"Could not decode base64 string to bytes. Field: {value}") from None
    return value


def _to_json(value: Any) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            pass
    return json.dumps(value)


_SCALAR_COERCERS = {
    "STRING": _to_string,
    "GEOGRAPHY": _to_string,
    "INTEGER": _to_integer,
    "FLOAT": _to_float,
    "NUMERIC": lambda v: _to_float(v, "numeric"),
    "BIGNUMERIC": lambda v: _to_float(v, "bignumeric"),
    "BOOLEAN": _to_boolean,
    "TIMESTAMP": timestamp_value,
    "DATE": _to_date,
    "DATETIME": _to_datetime,
    "TIME": _to_time,
    "BYTES": _to_bytes,
    "JSON": _to_json,
}

RowError = dict[str, str]


def _row_error(location: str, message: str) -> RowError:
    # Same keys as BigQuery's insertErrors[].errors[] entries.
    return {"reason": "invalid", "location": location, "debugInfo": "", "message": message}


def _coerce_scalar(value: Any, field: Mapping[str, Any], path: str, errors: list[RowError]) -> Any:
    if field["type"] == "RECORD":
        if not isinstance(value, dict):
            errors.append(_row_error(path, f"This field: {path} is not a record."))
            return None
        nested, nested_errors = coerce_row(value, field["fields"], False, prefix=path + ".")
        errors.extend(nested_errors)
        return nested
    coercer = _SCALAR_COERCERS.get(field["type"])
    if coercer is None:
        errors.append(_row_error(path, f"Type {field['type']} is not supported by the fake."))
        return None
    try:
        return coercer(value)
    except ValueError as exc:
        errors.append(_row_error(path, str(exc)))
        return None


# Values that need no conversion; a fast path because loads validate every cell.
_PASS_THROUGH = {("STRING", str), ("FLOAT", float)}


def _coerce_field(value: Any, field: Mapping[str, Any], path: str, errors: list[RowError]) -> Any:
    if (field["type"], type(value)) in _PASS_THROUGH and field["mode"] != "REPEATED":
        return value
    if field["mode"] == "REPEATED":
        if value is None:
            return []
        if not isinstance(value, list):
            errors.append(_row_error(path, f"Field {path} is repeated; expected an array."))
            return None
        return [_coerce_scalar(item, field, path, errors) for item in value]
    if value is None:
        if field["mode"] == "REQUIRED":
            errors.append(_row_error(path, f"Missing required field: {path}."))
        return None
    if isinstance(value, list):
        errors.append(_row_error(path, f"Array specified for non-repeated field: {path}."))
        return None
    return _coerce_scalar(value, field, path, errors)


def row_coercer(
    fields: Sequence[Mapping[str, Any]], ignore_unknown: bool, prefix: str = ""
) -> Callable[[Any], tuple[dict[str, Any], list[RowError]]]:
    """Build a validator for many rows of one schema (loads check every cell).

    The validator returns ({field name: storage value}, errors).  Field names
    match case-insensitively, as in BigQuery.
    """
    by_name = {f["name"]: f for f in fields}
    by_lower = {f["name"].lower(): f for f in fields}

    def coerce(row: Any) -> tuple[dict[str, Any], list[RowError]]:
        errors: list[RowError] = []
        if not isinstance(row, Mapping):
            return {}, [_row_error(prefix.rstrip("."), "Row is not a JSON object.")]
        values: dict[str, Any] = {}
        for key, value in row.items():
            field = by_name.get(key) or by_lower.get(str(key).lower())
            if field is None:
                if not ignore_unknown:
                    errors.append(_row_error(prefix + str(key), f"no such field: {prefix}{key}."))
                continue
            values[field["name"]] = _coerce_field(value, field, prefix + field["name"], errors)
        if len(values) != len(fields):
            for field in fields:
                if field["name"] not in values:
                    values[field["name"]] = _coerce_field(None, field, prefix + field["name"], errors)
        return values, errors

    return coerce


def coerce_row(
    row: Mapping[str, Any],
    fields: Sequence[Mapping[str, Any]],
    ignore_unknown: bool,
    prefix: str = "",
) -> tuple[dict[str, Any], list[RowError]]:
    """Validate one JSON row against a schema; see row_coercer."""
    return row_coercer(fields, ignore_unknown, prefix)(row)


def to_sqlite(value: Any, field: Mapping[str, Any]) -> Any:
    """Flatten a coerced value into something SQLite can store."""
    if field["mode"] == "REPEATED" or field["type"] == "RECORD":
        return None if value is None else json.dumps(value)
    return value


# --------------------------------------------------------------------------
# Wire encoding (tabledata.list / getQueryResults rows) and Python decoding
# --------------------------------------------------------------------------


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def _encode_scalar(value: Any, field: Mapping[str, Any], int64_ts: bool) -> Any:
    kind = field["type"]
    if value is None:
        return None
    if kind == "RECORD":
        record = json.loads(value) if isinstance(value, str) else value
        return {"f": [{"v": encode_cell(record.get(sub["name"]), sub, int64_ts)}
                      for sub in field["fields"]]}
    try:
        if kind == "TIMESTAMP":
            micros = timestamp_value(value) if isinstance(value, str) else int(value)
            # Without formatOptions.useInt64Timestamp BigQuery sends float seconds.
            return str(micros) if int64_ts else repr(micros / 1_000_000)
        if kind == "INTEGER":
            return str(int(value))
        if kind in ("FLOAT", "NUMERIC", "BIGNUMERIC"):
            return _format_float(float(value))
        if kind == "BOOLEAN":
            return "true" if value and value != "false" else "false"
    except (TypeError, ValueError):
        pass
    return value if isinstance(value, str) else str(value)


def encode_cell(value: Any, field: Mapping[str, Any], int64_ts: bool) -> Any:
    """Encode a storage value as the "v" of a REST row cell."""
    if field.get("mode") == "REPEATED":
        items = json.loads(value) if isinstance(value, str) else (value or [])
        return [{"v": _encode_scalar(item, field, int64_ts)} for item in items]
    return _encode_scalar(value, field, int64_ts)


def encode_rows(
    rows: Iterable[Sequence[Any]], fields: Sequence[Mapping[str, Any]], int64_ts: bool
) -> list[dict[str, Any]]:
    return [{"f": [{"v": encode_cell(v, f, int64_ts)} for v, f in zip(row, fields)]}
            for row in rows]


def decode_value(value: Any, field: Mapping[str, Any]) -> Any:
    """Storage value -> Python value for the fake's inspection helpers."""
    if value is None:
        return [] if field.get("mode") == "REPEATED" else None
    if field.get("mode") == "REPEATED":
        items = json.loads(value) if isinstance(value, str) else value
        scalar = dict(field, mode="NULLABLE")
        return [decode_value(item, scalar) for item in items]
    kind = field["type"]
    if kind == "RECORD":
        record = json.loads(value) if isinstance(value, str) else value
        return {sub["name"]: decode_value(record.get(sub["name"]), sub) for sub in field["fields"]}
    if kind == "TIMESTAMP":
        return micros_to_datetime(int(value))
    if kind == "BOOLEAN":
        return bool(value)
    if kind == "DATE":
        return dt.date.fromisoformat(value)
    if kind == "DATETIME":
        return dt.datetime.fromisoformat(value)
    return value
