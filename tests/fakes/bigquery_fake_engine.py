"""Query execution and result typing for the BigQuery fake.

SQLite reports column names only, and TIMESTAMPs are plain integers there, so
the BigQuery result schema is derived from the GoogleSQL text: column
references take the referenced table's field, aggregates and functions
follow BigQuery's typing rules, and anything else falls back to the Python
types of the values.  Anonymous expressions are named f0_, f1_, ...
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from tests.fakes import bigquery_fake_values as values
from tests.fakes.bigquery_fake_sql import (
    UNIT_MICROS,
    Catalog,
    Token,
    Translator,
    convert_parameters,
    invalid_query,
    tokenize,
)
from tests.fakes.bigquery_fake_values import ApiError

_NOT_ALIASES = frozenset({"END", "DESC", "ASC", "NULL", "TRUE", "FALSE", "DISTINCT", "ALL"})
# Words after which a trailing identifier is part of the expression, not an alias.
_EXPR_WORDS = frozenset("NOT AND OR IS IN LIKE BETWEEN CASE WHEN THEN ELSE INTERVAL SELECT "
                        "DISTINCT ALL NULL".split())
_QUERY_TIME_LIMIT = 10.0


@dataclasses.dataclass
class QueryResult:
    fields: list[dict[str, Any]]
    rows: list[tuple[Any, ...]]
    statement_type: str
    translated: str
    dml_affected_rows: int | None = None


# --------------------------------------------------------------------------
# Result typing
# --------------------------------------------------------------------------

_INT_FUNCS = frozenset("COUNT COUNTIF ROW_NUMBER RANK DENSE_RANK NTILE UNIX_MICROS UNIX_MILLIS "
                       "UNIX_SECONDS LENGTH CHAR_LENGTH STRPOS DIV TIMESTAMP_DIFF DATE_DIFF "
                       "EXTRACT".split())
_FLOAT_FUNCS = frozenset("AVG STDDEV STDDEV_POP STDDEV_SAMP VARIANCE VAR_POP VAR_SAMP SAFE_DIVIDE "
                         "IEEE_DIVIDE SQRT POW POWER EXP LN LOG LOG10 RAND ROUND PERCENT_RANK "
                         "CUME_DIST".split())
_TS_FUNCS = frozenset("TIMESTAMP TIMESTAMP_MICROS TIMESTAMP_MILLIS TIMESTAMP_SECONDS TIMESTAMP_ADD "
                      "TIMESTAMP_SUB TIMESTAMP_TRUNC CURRENT_TIMESTAMP".split())
_STRING_FUNCS = frozenset("CONCAT LOWER UPPER SUBSTR SUBSTRING TRIM LTRIM RTRIM REPLACE FORMAT "
                          "STRING_AGG LPAD RPAD FORMAT_TIMESTAMP".split())
_BOOL_FUNCS = frozenset("STARTS_WITH ENDS_WITH REGEXP_CONTAINS LOGICAL_AND LOGICAL_OR".split())
_FIRST_ARG_FUNCS = frozenset("MAX MIN ANY_VALUE SUM COALESCE IFNULL NULLIF FIRST_VALUE LAST_VALUE "
                             "LAG LEAD NTH_VALUE ABS GREATEST LEAST".split())
_BOOL_OPS = frozenset({"=", "<", ">", "<=", ">=", "!=", "<>"})
_BOOL_WORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "LIKE", "BETWEEN", "EXISTS"})


def _depths(toks: Sequence[Token]) -> list[int]:
    depth, out = 0, []
    for tok in toks:
        if tok.text == ")":
            depth -= 1
        out.append(depth)
        if tok.text == "(":
            depth += 1
    return out


def _split_top(toks: Sequence[Token], sep: str) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for tok, depth in zip(toks, _depths(toks)):
        if depth == 0 and tok.text == sep:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


@dataclasses.dataclass
class SelectItem:
    expr: list[Token]
    alias: str | None

    @property
    def is_star(self) -> bool:
        top = [t for t, d in zip(self.expr, _depths(self.expr)) if d == 0]
        return bool(top) and (top[-1].text == "*" or any(
            a.text == "*" and b.upper == "EXCEPT" for a, b in zip(top, top[1:])))

    @property
    def column_name(self) -> str | None:
        if self.alias:
            return self.alias
        if self.expr and all(t.kind in ("ident", "qident") or t.text == "." for t in self.expr):
            last = self.expr[-1]
            if last.upper in _NOT_ALIASES or last.upper.startswith("CURRENT_"):
                return None  # Keywords such as NULL are expressions, not column names.
            return (last.value or last.text).split(".")[-1]
        return None


def _select_items(toks: Sequence[Token], depths: Sequence[int], at: int) -> list[SelectItem]:
    depth, j = depths[at], at + 1
    while j < len(toks) and toks[j].upper in ("DISTINCT", "ALL"):
        j += 1
    body: list[Token] = []
    while j < len(toks) and depths[j] >= depth:
        if depths[j] == depth and toks[j].upper in ("FROM", "WHERE", "UNION", "ORDER", "LIMIT",
                                                     "GROUP", "HAVING", "WINDOW", "QUALIFY"):
            break
        body.append(toks[j])
        j += 1
    items = []
    for part in _split_top(body, ","):
        alias = None
        if len(part) >= 2 and part[-1].kind in ("ident", "qident") and part[-1].upper not in _NOT_ALIASES:
            before = part[-2]
            if before.upper == "AS":
                alias, part = part[-1].value or part[-1].text, part[:-2]
            elif before.text == ")" or before.kind in ("num", "str", "qident") or (
                    before.kind == "ident" and before.upper not in _EXPR_WORDS):
                alias, part = part[-1].value or part[-1].text, part[:-1]
        items.append(SelectItem(list(part), alias))
    return items


class TypeInferer:
    """Derives BigQuery column types from the GoogleSQL text.

    SQLite returns untyped values, and TIMESTAMPs are plain integers there,
    so the type of each output column is read off the query: column
    references take the referenced table's type, aggregates/functions follow
    BigQuery's typing rules, anything else falls back to the Python values.
    """

    def __init__(self, toks: list[Token], relations: Sequence[Mapping[str, Any]],
                 param_types: Mapping[Any, str], catalog: Catalog | None = None) -> None:
        self.toks, self.depths = toks, _depths(toks)
        self.param_types = param_types
        self.columns: dict[str, Mapping[str, Any]] = {}
        for resource in relations:
            for field in resource.get("schema", {}).get("fields", []):
                self.columns.setdefault(field["name"].lower(), field)
        self.aliases: dict[str, list[Token]] = {}
        for k, tok in enumerate(toks):
            if tok.upper == "SELECT":
                for item in _select_items(toks, self.depths, k):
                    if item.alias:
                        self.aliases.setdefault(item.alias.lower(), item.expr)
        self._resolving: set = set()

    def top_items(self) -> list[SelectItem]:
        k = next((k for k, t in enumerate(self.toks) if t.upper == "SELECT" and self.depths[k] == 0), None)
        return [] if k is None else _select_items(self.toks, self.depths, k)

    def name_type(self, name: str) -> str | None:
        lower = name.lower()
        if lower in self.aliases and lower not in self._resolving:
            self._resolving.add(lower)
            try:
                found = self.type_of(self.aliases[lower])
            finally:
                self._resolving.discard(lower)
            if found:
                return found
        field = self.columns.get(lower)
        return field.get("type") if field else None

    def column_field(self, item: SelectItem | None, name: str) -> Mapping[str, Any] | None:
        """The table field an output column passes through unchanged, if any.

        Needed so REPEATED and RECORD columns keep their mode and subfields.
        """
        if item is not None:
            expr = item.expr
            if not expr or not all(t.kind in ("ident", "qident") or t.text == "." for t in expr):
                return None
            name = (expr[-1].value or expr[-1].text).split(".")[-1]
        if name.lower() in self.aliases:
            return None
        return self.columns.get(name.lower())

    def type_of(self, toks: Sequence[Token]) -> str | None:
        toks = list(toks)
        while len(toks) >= 2 and toks[0].text == "(" and _matching(toks, 0) == len(toks) - 1:
            toks = toks[1:-1]
        if not toks:
            return None
        if toks[0].upper == "CASE":
            return self._case_type(toks)
        top = [t for t, d in zip(toks, _depths(toks)) if d == 0]
        if any(t.text in _BOOL_OPS or t.upper in _BOOL_WORDS for t in top):
            return "BOOLEAN"
        if any(t.text == "||" for t in top):
            return "STRING"
        if any(t.text in ("+", "-", "*", "/", "%") for t in top[1:]):
            return self._arith_type(toks)
        return self._atom_type(toks)

    def _case_type(self, toks: list[Token]) -> str | None:
        depths = _depths(toks)
        start = next((k + 1 for k, t in enumerate(toks) if t.upper == "THEN" and depths[k] == 0), None)
        if start is None:
            return None
        end = next((k for k in range(start, len(toks)) if depths[k] == 0
                    and toks[k].upper in ("WHEN", "ELSE", "END")), len(toks))
        return self.type_of(toks[start:end])

    def _arith_type(self, toks: list[Token]) -> str | None:
        if any(t.text == "/" for t, d in zip(toks, _depths(toks)) if d == 0):
            return "FLOAT"
        operands, current = [], []
        for tok, depth in zip(toks, _depths(toks)):
            if depth == 0 and tok.text in ("+", "-", "*", "%") and current:
                operands.append(current)
                current = []
            else:
                current.append(tok)
        operands.append(current)
        kinds = [self.type_of(op) for op in operands if op]
        if "FLOAT" in kinds:
            return "FLOAT"
        if "TIMESTAMP" in kinds:
            return "TIMESTAMP"
        return "INTEGER" if kinds and all(k == "INTEGER" for k in kinds) else next(
            (k for k in kinds if k), None)

    def _atom_type(self, toks: list[Token]) -> str | None:
        first = toks[0]
        if len(toks) == 1:
            if first.kind == "param":
                return self.param_types.get(first.value)
            if first.kind == "str":
                return "STRING"
            if first.kind == "num":
                return "INTEGER" if re.fullmatch(r"\d+", first.text) else "FLOAT"
            if first.upper in ("TRUE", "FALSE"):
                return "BOOLEAN"
            if first.upper == "CURRENT_TIMESTAMP":
                return "TIMESTAMP"
        if first.upper in ("TIMESTAMP", "DATE", "DATETIME", "TIME", "NUMERIC") and len(toks) == 2 \
                and toks[1].kind == "str":
            return values.canonical_type(first.upper)
        if len(toks) >= 3 and first.kind == "ident" and toks[1].text == "(":
            return self._call_type(toks)
        if all(t.kind in ("ident", "qident") or t.text == "." for t in toks):
            last = toks[-1]
            return self.name_type((last.value or last.text).split(".")[-1])
        return None

    def _call_type(self, toks: list[Token]) -> str | None:
        name = toks[0].upper
        close = _matching(toks, 1)
        args = _split_top(toks[2:close], ",")
        if name in ("CAST", "SAFE_CAST"):
            inner = toks[2:close]
            as_at = max((k for k, (t, d) in enumerate(zip(inner, _depths(inner))) if t.upper == "AS" and d == 0),
                        default=None)
            return values.canonical_type(inner[as_at + 1].text) if as_at is not None else None
        if name in _INT_FUNCS:
            return "INTEGER"
        if name in _FLOAT_FUNCS:
            return "FLOAT"
        if name in _TS_FUNCS:
            return "TIMESTAMP"
        if name in _STRING_FUNCS:
            return "STRING"
        if name in _BOOL_FUNCS:
            return "BOOLEAN"
        if name in ("DATE", "CURRENT_DATE"):
            return "DATE"
        if name == "IF" and len(args) >= 2:
            return self.type_of(args[1])
        if name in _FIRST_ARG_FUNCS and args and args[0]:
            arg = args[0][1:] if args[0][0].upper == "DISTINCT" else args[0]
            return self.type_of(arg)
        return None


def _matching(toks: Sequence[Token], open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(toks)):
        depth += (toks[k].text == "(") - (toks[k].text == ")")
        if depth == 0:
            return k
    return len(toks) - 1


def _type_from_values(rows: Sequence[Sequence[Any]], col: int) -> str:
    for row in rows:
        value = row[col]
        if isinstance(value, bool):
            return "BOOLEAN"
        if isinstance(value, int):
            return "INTEGER"
        if isinstance(value, float):
            return "FLOAT"
        if isinstance(value, bytes):
            return "BYTES"
        if value is not None:
            return "STRING"
    return "INTEGER"  # BigQuery types a bare NULL as INT64.


def result_schema(inferer: TypeInferer, names: list[str],
                  rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Name and type every output column like BigQuery (f0_ for anonymous ones)."""
    items = inferer.top_items()
    stars = [k for k, item in enumerate(items) if item.is_star]
    by_position: list[SelectItem | None] = [None] * len(names)
    if not stars and len(items) == len(names):
        by_position = list(items)
    elif len(stars) == 1:
        before, after = items[:stars[0]], items[stars[0] + 1:]
        by_position[:len(before)] = before
        if after:
            by_position[len(names) - len(after):] = after
    fields, anonymous = [], 0
    for col, name in enumerate(names):
        item = by_position[col]
        col_type = None
        if item is not None:
            col_type = inferer.type_of(item.expr)
            name = item.column_name or name
            if item.column_name is None:
                name, anonymous = f"f{anonymous}_", anonymous + 1
        if col_type is None:
            col_type = inferer.name_type(name)
        if col_type is None:
            col_type = _type_from_values(rows, col)
        field: dict[str, Any] = {"name": name, "type": col_type, "mode": "NULLABLE"}
        source = inferer.column_field(item, name)
        if source is not None and source.get("type") == col_type:
            field["mode"] = source.get("mode", "NULLABLE")
            if "fields" in source:
                field["fields"] = source["fields"]
        fields.append(field)
    return fields


# --------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------


def statement_type(toks: Sequence[Token]) -> str:
    first = toks[0].upper if toks else ""
    if first in ("SELECT", "WITH", ""):
        return "SELECT"
    if toks and toks[0].text == "(":
        return "SELECT"
    return first


def _sqlite_error(exc: sqlite3.Error, translated: str, udf_error: str | None) -> ApiError:
    message = str(exc)
    missing = re.match(r"no such table: (?:main\.)?(.+)", message)
    if missing:
        name = missing.group(1)
        parts = name.split(".")
        shown = f"{parts[0]}:{'.'.join(parts[1:])}" if len(parts) == 3 else name
        return ApiError(404, "notFound", f"Not found: Table {shown} was not found in location US")
    if udf_error and "user-defined function raised exception" in message:
        message = udf_error
    if message == "interrupted":
        message = f"Query exceeded the fake's {_QUERY_TIME_LIMIT:.0f}s time limit"
    # Reword SQLite's messages to BigQuery's vocabulary for the common cases.
    column = re.match(r"no such column: (.+)", message)
    if column:
        message = f"Unrecognized name: {column.group(1)}"
    elif "syntax error" in message or message.startswith("incomplete input"):
        message = f"Syntax error: {message}"
    return invalid_query(f"{message} [fake BigQuery ran on SQLite: {translated}]")


class QueryEngine:
    """Runs GoogleSQL against the store's SQLite connection."""

    _udf_error = threading.local()

    def __init__(self, conn: sqlite3.Connection, catalog: Catalog) -> None:
        self.conn, self.catalog = conn, catalog
        self._register_functions()

    def run(self, sql: str, project: str, parameters: Sequence[Mapping[str, Any]] = (),
            default_dataset: Mapping[str, Any] | None = None) -> QueryResult:
        toks = tokenize(sql)
        while toks and toks[-1].text == ";":
            toks.pop()
        if any(t.text == ";" for t in toks):
            raise invalid_query("Multi-statement scripts are not supported by the fake")
        binds, param_types = convert_parameters(parameters)
        self._check_params(toks, binds)
        default = None
        if default_dataset and default_dataset.get("datasetId"):
            default = (default_dataset.get("projectId") or project, default_dataset["datasetId"])
        translator = Translator(self.catalog, project, lambda q: self._probe(q, binds),
                                default_dataset=default)
        translated = translator.translate(toks)
        names, rows, rowcount = self._execute(translated, binds)
        kind = statement_type(toks)
        if kind != "SELECT":
            return QueryResult([], [], kind, translated, max(rowcount, 0))
        inferer = TypeInferer(toks, self._typed_relations(translator), param_types)
        return QueryResult(result_schema(inferer, names, rows), rows, kind, translated)

    def view_schema(self, query: str, project: str) -> list[dict[str, Any]]:
        """Schema a view exposes; also validates the view at creation time."""
        body = query.strip().rstrip(";")
        return self.run(f"SELECT * FROM (\n{body}\n) LIMIT 0", project).fields

    def _typed_relations(self, translator: Translator) -> list[dict[str, Any]]:
        out = []
        for resource in translator.relations:
            if resource.get("type") == "VIEW":
                ref = resource["tableReference"]
                fields = self.view_schema(resource["view"]["query"], ref["projectId"])
                resource = dict(resource, schema={"fields": fields})
            out.append(resource)
        return out

    @staticmethod
    def _check_params(toks: Sequence[Token], binds: Any) -> None:
        for tok in toks:
            if tok.kind == "param" and tok.text != "?" and not tok.text.startswith("@@"):
                if not isinstance(binds, dict) or tok.value not in binds:
                    raise invalid_query(f"Query parameter '{tok.value}' not found at [{tok.text}]")

    def _probe(self, sql: str, binds: Any) -> list[str]:
        return self._execute(f"SELECT * FROM ({sql}) LIMIT 0", binds)[0]

    def _execute(self, translated: str, binds: Any) -> tuple[list[str], list[tuple[Any, ...]], int]:
        """Run one statement -> (column names, rows, rowcount) under a time limit.

        Rows are fetched inside the limit because SQLite does its work while
        stepping through results; a runaway query becomes a 400, not a hang.
        """
        deadline = time.monotonic() + _QUERY_TIME_LIMIT
        self.conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        self._udf_error.message = None
        try:
            cursor = self.conn.execute(translated, binds)
            names = [d[0] for d in cursor.description or []]
            return names, cursor.fetchall(), cursor.rowcount
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, translated, self._udf_error.message) from None
        finally:
            self.conn.set_progress_handler(None, 0)

    # -- SQLite functions standing in for GoogleSQL ones ---------------------

    def _register_functions(self) -> None:
        def guarded(fn: Callable) -> Callable:
            def wrapper(*args: Any) -> Any:
                if any(a is None for a in args):
                    return None
                try:
                    return fn(*args)
                except (ValueError, TypeError, OverflowError, re.error) as exc:
                    self._udf_error.message = str(exc)
                    raise
            return wrapper

        functions: dict[str, tuple[int, Callable]] = {
            "bq_timestamp": (1, lambda v: int(v) if isinstance(v, (int, float))
                             else values.parse_timestamp(str(v))),
            "bq_ts_millis": (1, lambda v: int(v) * 1_000),
            "bq_ts_seconds": (1, lambda v: int(v) * 1_000_000),
            "bq_unix_millis": (1, lambda v: int(v) // 1_000),
            "bq_unix_seconds": (1, lambda v: int(v) // 1_000_000),
            "bq_ts_add": (2, lambda ts, d: int(ts) + int(d)),
            "bq_ts_sub": (2, lambda ts, d: int(ts) - int(d)),
            "bq_ts_diff": (3, lambda a, b, unit: int((int(a) - int(b)) / UNIT_MICROS[unit])),
            "bq_ts_trunc": (2, lambda ts, unit: int(ts) - int(ts) % UNIT_MICROS[unit]),
            "bq_date": (1, lambda v: values.micros_to_datetime(v).date().isoformat()
                        if isinstance(v, int) else str(v)[:10]),
            "bq_safe_divide": (2, lambda a, b: None if b == 0 else a / b),
            "bq_starts_with": (2, lambda s, p: int(str(s).startswith(str(p)))),
            "bq_ends_with": (2, lambda s, p: int(str(s).endswith(str(p)))),
            "bq_regexp_contains": (2, lambda s, p: int(re.search(p, s) is not None)),
        }
        for name, (arity, fn) in functions.items():
            self.conn.create_function(name, arity, guarded(fn), deterministic=True)
        self.conn.create_function(
            "bq_now", 0, lambda: values.datetime_to_micros(values.dt.datetime.now(values.UTC)))
