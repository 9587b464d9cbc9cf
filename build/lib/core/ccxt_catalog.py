"""The list of exchange ids ccxt supports, read without importing ccxt.

Importing ccxt costs about 80 MB and a second; the supervisor only needs the names to
validate a config, so it reads the ``exchanges`` list literal from ccxt's package source.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def known_exchange_ids() -> frozenset[str]:
    spec = importlib.util.find_spec("ccxt")
    if spec is None or spec.origin is None:
        raise RuntimeError("ccxt is not installed")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "exchanges" for t in node.targets)
        ):
            return frozenset(ast.literal_eval(node.value))
    raise RuntimeError("ccxt's exchange list was not found in its package source")
