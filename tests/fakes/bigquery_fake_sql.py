"""GoogleSQL -> SQLite translation for the BigQuery fake.

The fake runs queries on SQLite.  This module rewrites the GoogleSQL text
token by token (it never parses a full grammar); bigquery_fake_engine runs
the result and derives the BigQuery result schema.

Supported subset (anything else reaches SQLite and, if SQLite rejects it,
comes back as a 400 ``invalidQuery``):

* SELECT [DISTINCT] ... FROM ... [JOIN ...] WHERE / GROUP BY / HAVING /
  ORDER BY [NULLS FIRST|LAST] / LIMIT / OFFSET, subqueries, WITH, UNION ALL,
  window functions (ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)),
  COUNT/SUM/AVG/MIN/MAX, ``SELECT * EXCEPT (col, ...)``;
* table names: `project.dataset.table`, `dataset.table`, `p`.`d`.`t` and bare
  dataset.table; a table gets its last name part as implicit alias; views are
  expanded as CTEs so they always see current data;
* strings '...', "...", r'...', triple-quoted; backticked column names;
* named parameters ``@name`` (STRING, INT64, FLOAT64, NUMERIC, BOOL,
  TIMESTAMP, DATE, DATETIME; ARRAY only as ``IN UNNEST(@p)``) and positional ``?``;
* TIMESTAMP 'lit', TIMESTAMP(expr), CAST(x AS TIMESTAMP), CURRENT_TIMESTAMP(),
  TIMESTAMP_ADD/SUB(ts, INTERVAL n unit), TIMESTAMP_DIFF, TIMESTAMP_TRUNC,
  TIMESTAMP_SECONDS/MILLIS/MICROS, UNIX_SECONDS/MILLIS/MICROS, DATE(ts),
  IF, IFNULL, COALESCE, GREATEST, LEAST, SAFE_CAST, SAFE_DIVIDE,
  STARTS_WITH, ENDS_WITH, REGEXP_CONTAINS, ANY_VALUE, STRING_AGG;
* a string literal compared with a TIMESTAMP column (``ts >= '2024-01-01'``,
  ``ts BETWEEN '...' AND '...'``) is coerced to TIMESTAMP as BigQuery does;
* ``/`` always yields FLOAT64 as in BigQuery;
* INSERT/UPDATE/DELETE pass through (best effort, numDmlAffectedRows).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Mapping, Sequence

from tests.fakes import bigquery_fake_values as values
from tests.fakes.bigquery_fake_values import ApiError

_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+)
    |(?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
    |(?P<str>(?:[rR][bB]?|[bB][rR]?)?(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<qident>`[^`]*`)
    |(?P<param>@@?[A-Za-z_]\w*|\?)
    |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<ident>[A-Za-z_]\w*)
    |(?P<op><>|!=|<=|>=|\|\||<<|>>|[-+*/%=<>(),.;\[\]~&|^:])""",
    re.S | re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`",
            "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "?": "?"}
UNIT_MICROS = {"MICROSECOND": 1, "MILLISECOND": 1_000, "SECOND": 1_000_000,
                "MINUTE": 60_000_000, "HOUR": 3_600_000_000, "DAY": 86_400_000_000,
                "WEEK": 7 * 86_400_000_000}
# Function renames; "" drops the name, leaving a parenthesised expression.
_FUNCTIONS = {
    "TIMESTAMP": "bq_timestamp", "TIMESTAMP_MICROS": "", "UNIX_MICROS": "",
    "TIMESTAMP_MILLIS": "bq_ts_millis", "TIMESTAMP_SECONDS": "bq_ts_seconds",
    "UNIX_MILLIS": "bq_unix_millis", "UNIX_SECONDS": "bq_unix_seconds",
    "CURRENT_TIMESTAMP": "bq_now", "TIMESTAMP_ADD": "bq_ts_add", "TIMESTAMP_SUB": "bq_ts_sub",
    "TIMESTAMP_DIFF": "bq_ts_diff", "TIMESTAMP_TRUNC": "bq_ts_trunc", "DATE": "bq_date",
    "IF": "iif", "SAFE_CAST": "CAST", "ANY_VALUE": "MIN", "STRING_AGG": "group_concat",
    "GREATEST": "MAX", "LEAST": "MIN", "SAFE_DIVIDE": "bq_safe_divide",
    "STARTS_WITH": "bq_starts_with", "ENDS_WITH": "bq_ends_with",
    "REGEXP_CONTAINS": "bq_regexp_contains",
}
_UNIT_ARG_FUNCTIONS = {"TIMESTAMP_DIFF", "TIMESTAMP_TRUNC"}
_CAST_TYPES = {"STRING": "TEXT", "BYTES": "BLOB", "INT64": "INTEGER", "INTEGER": "INTEGER",
               "FLOAT64": "REAL", "FLOAT": "REAL", "NUMERIC": "REAL", "BIGNUMERIC": "REAL",
               "BOOL": "INTEGER", "BOOLEAN": "INTEGER", "DATE": "TEXT", "DATETIME": "TEXT"}
_ALIAS_STOP = frozenset(
    "WHERE GROUP ORDER HAVING LIMIT JOIN INNER LEFT RIGHT FULL CROSS OUTER ON USING UNION "
    "INTERSECT EXCEPT WINDOW QUALIFY SET FOR TABLESAMPLE VALUES SELECT OFFSET NATURAL WHEN "
    "DEFAULT".split()
)
_TABLE_CONTEXT = frozenset({"FROM", "JOIN", "INTO", "UPDATE", "TABLE"})
_COMPARISONS = frozenset({"=", "<", ">", "<=", ">=", "!=", "<>"})


@dataclasses.dataclass
class Token:
    kind: str  # str | qident | param | num | ident | op
    text: str
    value: Any = None

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


def invalid_query(message: str) -> ApiError:
    return ApiError(400, "invalidQuery", message, "query")


def _unescape(body: str) -> str:
    def repl(match: re.Match[str]) -> str:
        esc = match.group(1)
        if esc[0] in "xX":
            return chr(int(esc[1:], 16))
        if esc[0] in "uU":
            return chr(int(esc[1:], 16))
        return _ESCAPES.get(esc, esc)

    return re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", repl, body, flags=re.S)


def _string_value(text: str) -> str:
    prefix = re.match(r"[rRbB]*", text).group(0)
    body = text[len(prefix):]
    quote = 3 if body[:3] in ("'''", '"""') else 1
    inner = body[quote:-quote]
    return inner if "r" in prefix.lower() else _unescape(inner)


def tokenize(sql: str) -> list[Token]:
    """Split GoogleSQL into significant tokens (whitespace/comments dropped)."""
    tokens: list[Token] = []
    pos, positional = 0, 0
    while pos < len(sql):
        match = _TOKEN_RE.match(sql, pos)
        if not match:
            raise invalid_query(f"Syntax error: Illegal input character \"{sql[pos]}\" at [{pos}]")
        kind, text = match.lastgroup or "", match.group(0)
        pos = match.end()
        if kind in ("ws", "comment"):
            continue
        token = Token(kind, text)
        if kind == "str":
            token.value = _string_value(text)
        elif kind == "qident":
            token.value = text[1:-1]
        elif kind == "param":
            token.value = positional if text == "?" else text[1:].lower()
            positional += text == "?"
        tokens.append(token)
    return tokens


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------
# Query parameters
# --------------------------------------------------------------------------


def _param_scalar(type_name: str, raw: Any) -> Any:
    if raw is None:
        return None
    kind = values.canonical_type(type_name)
    try:
        if kind == "TIMESTAMP":
            return values.timestamp_value(raw)
        if kind == "INTEGER":
            return int(raw)
        if kind in ("FLOAT", "NUMERIC", "BIGNUMERIC"):
            return float(raw)
        if kind == "BOOLEAN":
            return int(str(raw).lower() == "true")
        if kind in ("STRING", "DATE", "DATETIME", "TIME", "BYTES", "JSON", "GEOGRAPHY"):
            return str(raw)
    except ValueError as exc:
        raise invalid_query(f"Invalid query parameter value: {exc}") from None
    raise invalid_query(f"Query parameters of type {type_name} are not supported by the fake")


def convert_parameters(
    parameters: Sequence[Mapping[str, Any]],
) -> tuple[Any, dict[Any, str]]:
    """QueryParameter resources -> (SQLite bind values, {name/index: type})."""
    named: dict[str, Any] = {}
    positional: list[Any] = []
    types: dict[Any, str] = {}
    for index, param in enumerate(parameters):
        ptype = param.get("parameterType", {})
        pvalue = param.get("parameterValue", {}) or {}
        if ptype.get("type") == "ARRAY":
            inner = ptype.get("arrayType", {}).get("type", "STRING")
            items = [_param_scalar(inner, item.get("value")) for item in pvalue.get("arrayValues", [])]
            value, type_name = json.dumps(items), "ARRAY"
        else:
            value = _param_scalar(ptype.get("type", "STRING"), pvalue.get("value"))
            type_name = values.canonical_type(ptype.get("type", "STRING"))
        if param.get("name"):
            named[param["name"].lower()] = value
            types[param["name"].lower()] = type_name
        else:
            positional.append(value)
            types[index] = type_name
    return (named if named or not positional else positional), types


# --------------------------------------------------------------------------
# Translation
# --------------------------------------------------------------------------


class ExceptMarker:
    """Placeholder for ``[qualifier.]* EXCEPT (cols)``; expanded by probing."""

    def __init__(self, qualifier: str | None, excluded: Sequence[str]) -> None:
        self.qualifier, self.excluded = qualifier, {c.lower() for c in excluded}

    def render(self, names: Sequence[str]) -> str:
        kept = [quote_ident(n) for n in names if n.lower() not in self.excluded]
        if not kept:
            raise invalid_query("SELECT * EXCEPT would exclude all columns")
        prefix = f"{self.qualifier}." if self.qualifier else ""
        return (", " + prefix).join(kept)


@dataclasses.dataclass
class Piece:
    text: Any  # str or ExceptMarker
    depth: int

    @property
    def upper(self) -> str:
        return self.text.upper() if isinstance(self.text, str) else ""


class Catalog:
    """What the translator needs from the store (implemented there)."""

    def lookup_table(self, project: str, dataset: str, table: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def dataset_exists(self, project: str, dataset: str) -> bool:
        raise NotImplementedError


class Translator:
    """Rewrites one statement; views it references become shared CTEs."""

    def __init__(self, catalog: Catalog, project: str, probe: Callable[[str], list[str]],
                 views: dict[str, str] | None = None, stack: tuple[str, ...] = (),
                 default_dataset: tuple[str, str] | None = None) -> None:
        self.catalog, self.project, self.probe = catalog, project, probe
        self.default_dataset = default_dataset
        self.views: dict[str, str] = views if views is not None else {}
        self.stack = stack
        self.relations: list[dict[str, Any]] = []  # table resources referenced

    # -- entry points -----------------------------------------------------

    def translate(self, tokens: list[Token], with_views: bool = True) -> str:
        pieces = self._rewrite(tokens)
        self._expand_excepts(pieces)
        body = " ".join(p.text for p in pieces)
        return self._with_view_ctes(body) if with_views else body

    def _with_view_ctes(self, body: str) -> str:
        if not self.views:
            return body
        ctes = ", ".join(f"{quote_ident(name)} AS ({sql})" for name, sql in self.views.items())
        match = re.match(r"\s*WITH(\s+RECURSIVE)?\s", body, re.I)
        if match:
            return f"WITH{match.group(1) or ''} {ctes}, {body[match.end():]}"
        return f"WITH {ctes} {body}"

    # -- token rewriting --------------------------------------------------

    def _rewrite(self, toks: list[Token]) -> list[Piece]:
        out: list[Piece] = []
        stack: list[tuple[str | None, int | None]] = []
        i = 0

        def emit(text: Any) -> None:
            out.append(Piece(text, len(stack)))

        def peek(offset: int = 1) -> Token | None:
            return toks[i + offset] if i + offset < len(toks) else None

        while i < len(toks):
            tok = toks[i]
            nxt = peek()
            if tok.kind == "str":
                literal = sql_literal(tok.value)
                emit(f"bq_timestamp({literal})" if self._compared_to_timestamp(toks, i) else literal)
            elif tok.kind == "num":
                emit(tok.text)
            elif tok.kind == "param":
                emit(self._param(tok))
            elif tok.kind == "op" and tok.text == "(":
                emit("(")
                stack.append((None, None))
            elif tok.kind == "op" and tok.text == ")":
                if stack:
                    stack.pop()
                emit(")")
            elif tok.kind == "op" and tok.text == "*" and nxt is not None and nxt.upper == "EXCEPT":
                i = self._star_except(toks, i, out, emit)
                continue
            elif tok.kind == "op" and tok.text == "/":
                emit("* 1.0 /")  # GoogleSQL "/" always returns FLOAT64.
            elif tok.kind == "op":
                emit(tok.text)
            else:
                i = self._identifier(toks, i, out, stack, emit)
                continue
            i += 1
        return out

    def _compared_to_timestamp(self, toks: list[Token], i: int) -> bool:
        """Is string literal i compared with a TIMESTAMP column (ts >= '2024-01-01')?

        BigQuery coerces such literals to TIMESTAMP; SQLite would compare
        text with integers and silently return wrong rows.
        """
        columns = {f["name"].lower() for r in self.relations
                   for f in (r.get("schema") or {}).get("fields", []) if f.get("type") == "TIMESTAMP"}

        def is_column(k: int) -> bool:
            while k + 2 < len(toks) and toks[k + 1].text == "." and toks[k].kind in ("ident", "qident"):
                k += 2  # Skip a qualifier: t.ts -> ts.
            return 0 <= k < len(toks) and toks[k].kind in ("ident", "qident") and \
                (toks[k].value or toks[k].text).split(".")[-1].lower() in columns

        def text(k: int) -> str:
            return toks[k].text.upper() if 0 <= k < len(toks) else ""

        return (text(i - 1) in _COMPARISONS and is_column(i - 2)
                or text(i + 1) in _COMPARISONS and is_column(i + 2)
                or text(i - 1) == "BETWEEN" and is_column(i - 2)
                or text(i - 1) == "AND" and text(i - 3) == "BETWEEN" and is_column(i - 4))

    @staticmethod
    def _param(tok: Token) -> str:
        if tok.text.startswith("@@"):
            raise invalid_query(f"System variables such as {tok.text} are not supported by the fake")
        return "?" if tok.text == "?" else f":{tok.value}"

    def _star_except(self, toks: list[Token], i: int, out: list[Piece], emit: Callable) -> int:
        if i + 2 >= len(toks) or toks[i + 2].text != "(":
            raise invalid_query("Syntax error: Expected \"(\" after EXCEPT")
        qualifier = None
        if len(out) >= 2 and out[-1].text == ".":
            out.pop()
            qualifier = out.pop().text
        j, names = i + 3, []
        while j < len(toks) and toks[j].text != ")":
            if toks[j].kind in ("ident", "qident"):
                names.append(toks[j].value or toks[j].text)
            j += 1
        emit(ExceptMarker(qualifier, names))
        return j + 1

    def _identifier(self, toks: list[Token], i: int, out: list[Piece], stack: list, emit: Callable) -> int:
        tok, nxt = toks[i], toks[i + 1] if i + 1 < len(toks) else None
        parts, j, backticked = self._chain(toks, i)
        in_table_context = i > 0 and toks[i - 1].upper in _TABLE_CONTEXT
        if len(parts) > 1 or backticked or (in_table_context and self.default_dataset):
            return self._name_chain(toks, i, j, parts, backticked, emit)
        upper = tok.upper
        func = stack[-1][0] if stack else None
        if upper in ("TIMESTAMP", "DATE", "DATETIME", "TIME", "NUMERIC", "BIGNUMERIC", "JSON") \
                and nxt is not None and nxt.kind == "str":
            emit(f"bq_timestamp({sql_literal(nxt.value)})" if upper == "TIMESTAMP"
                 else sql_literal(nxt.value) if upper not in ("NUMERIC", "BIGNUMERIC") else nxt.value)
            return i + 2
        if upper == "INTERVAL":
            return self._interval(toks, i, emit)
        if upper == "CURRENT_TIMESTAMP" and (nxt is None or nxt.text != "("):
            emit("bq_now()")
            return i + 1
        if upper == "UNNEST" and nxt is not None and nxt.text == "(":
            return self._unnest(toks, i, emit)
        if func in ("CAST", "SAFE_CAST") and upper == "AS" and nxt is not None:
            target = nxt.text.upper()
            if target == "TIMESTAMP":
                out[stack[-1][1]].text = "bq_timestamp"
            elif target in _CAST_TYPES:
                emit(f"AS {_CAST_TYPES[target]}")
            else:
                raise invalid_query(f"CAST to {nxt.text} is not supported by the fake")
            return i + 2
        if func in _UNIT_ARG_FUNCTIONS and upper in UNIT_MICROS and nxt is not None \
                and nxt.text in (")", ","):
            emit(sql_literal(upper))
            return i + 1
        if nxt is not None and nxt.text == "(":
            emit(_FUNCTIONS.get(upper, tok.text))
            stack.append((upper, len(out) - 1))
            emit("(")
            out[-1].depth -= 1
            return i + 2
        emit(tok.text)
        return i + 1

    @staticmethod
    def _chain(toks: list[Token], i: int) -> tuple[list[str], int, bool]:
        """Collect a dotted name: a.b.c, `a.b.c`, `a`.`b`.c -> parts."""
        parts: list[str] = []
        backticked = False
        j = i
        while j < len(toks) and toks[j].kind in ("ident", "qident"):
            if toks[j].kind == "qident":
                backticked = True
                parts.extend(toks[j].value.split("."))
            else:
                parts.append(toks[j].text)
            if j + 2 < len(toks) and toks[j + 1].text == "." and toks[j + 2].kind in ("ident", "qident"):
                j += 2
            else:
                break
        return parts, j + 1, backticked

    def _name_chain(self, toks: list[Token], i: int, j: int, parts: list[str],
                    backticked: bool, emit: Callable) -> int:
        prev = toks[i - 1].upper if i else ""
        resource = self._resolve(parts, required=prev in _TABLE_CONTEXT and len(parts) > 1
                                 and (backticked or len(parts) == 3))
        if resource is None:
            emit(".".join(quote_ident(p) if backticked else p for p in parts))
            return j
        emit(quote_ident(self._relation_name(resource)))
        nxt = toks[j] if j < len(toks) else None
        has_alias = nxt is not None and (
            nxt.upper == "AS" or nxt.kind == "qident"
            or (nxt.kind == "ident" and nxt.upper not in _ALIAS_STOP))
        if not has_alias:
            emit(f"AS {quote_ident(parts[-1])}")  # BigQuery's implicit alias.
        return j

    def _resolve(self, parts: list[str], required: bool) -> dict[str, Any] | None:
        if len(parts) == 3:
            project, dataset, table = parts
        elif len(parts) == 2:
            project, (dataset, table) = self.project, parts
        elif self.default_dataset:
            (project, dataset), table = self.default_dataset, parts[0]
        else:
            return None
        resource = self.catalog.lookup_table(project, dataset, table)
        if resource is None and required:
            if not self.catalog.dataset_exists(project, dataset):
                raise ApiError(404, "notFound",
                               f"Not found: Dataset {project}:{dataset} was not found in location US")
            raise ApiError(404, "notFound",
                           f"Not found: Table {project}:{dataset}.{table} was not found in location US")
        if resource is not None:
            self.relations.append(resource)
        return resource

    def _relation_name(self, resource: dict[str, Any]) -> str:
        ref = resource["tableReference"]
        full = f"{ref['projectId']}.{ref['datasetId']}.{ref['tableId']}"
        if resource.get("type") == "VIEW" and full not in self.views:
            if full in self.stack:
                raise invalid_query(f"View {full} references itself")
            sub = Translator(self.catalog, ref["projectId"], self.probe, self.views, self.stack + (full,))
            sql = sub.translate(tokenize(resource["view"]["query"]), with_views=False)
            self.relations.extend(sub.relations)
            self.views[full] = sql
        return full

    def _interval(self, toks: list[Token], i: int, emit: Callable) -> int:
        j, sign = i + 1, ""
        if j < len(toks) and toks[j].text in ("-", "+"):
            sign, j = toks[j].text, j + 1
        if j + 1 >= len(toks):
            raise invalid_query("Syntax error: incomplete INTERVAL")
        amount, unit = toks[j], toks[j + 1].text.upper()
        if unit not in UNIT_MICROS:
            raise invalid_query(f"INTERVAL unit {unit} is not supported by the fake")
        text = self._param(amount) if amount.kind == "param" else (
            amount.value if amount.kind == "str" else amount.text)
        emit(f"({sign}{text} * {UNIT_MICROS[unit]})")
        return j + 2

    def _unnest(self, toks: list[Token], i: int, emit: Callable) -> int:
        if i + 3 < len(toks) and toks[i + 2].kind == "param" and toks[i + 3].text == ")":
            emit(f"(SELECT value FROM json_each({self._param(toks[i + 2])}))")
            return i + 4
        raise invalid_query("UNNEST is only supported as IN UNNEST(@array_param) by the fake")

    # -- SELECT * EXCEPT ---------------------------------------------------

    def _expand_excepts(self, pieces: list[Piece]) -> None:
        markers = [k for k, p in enumerate(pieces) if isinstance(p.text, ExceptMarker)]
        for k in sorted(markers, key=lambda m: -pieces[m].depth):
            marker = pieces[k].text
            names = self.probe(self._with_view_ctes(self._probe_sql(pieces, k)))
            pieces[k].text = marker.render(names)

    @staticmethod
    def _probe_sql(pieces: list[Piece], k: int) -> str:
        """The SELECT that owns marker k, with its select list reduced to the star."""
        depth = pieces[k].depth
        start = next((j + 1 for j in range(k - 1, -1, -1)
                      if pieces[j].text == "(" and pieces[j].depth == depth - 1), 0)
        end = next((j for j in range(k + 1, len(pieces))
                    if pieces[j].text == ")" and pieces[j].depth == depth - 1), len(pieces))
        at_depth = [j for j in range(start, end) if pieces[j].depth == depth]
        selects = [j for j in at_depth if j < k and pieces[j].upper == "SELECT"]
        froms = [j for j in at_depth if j > k and pieces[j].upper == "FROM"]
        if not selects or not froms:
            raise invalid_query("SELECT * EXCEPT needs a FROM clause")
        stop = next((j for j in at_depth if j > froms[0] and pieces[j].upper in
                     ("UNION", "INTERSECT", "EXCEPT", "ORDER", "LIMIT")), end)
        prefix = pieces[start:selects[0]] if pieces[start].upper == "WITH" else []
        marker = pieces[k].text
        star = f"{marker.qualifier}.*" if marker.qualifier else "*"
        texts = [p.text for p in prefix] + ["SELECT", star] + [p.text for p in pieces[froms[0]:stop]]
        return " ".join(texts)
