"""``pip install .`` brings what the image and CI install: every pinned runtime dependency in
requirements.txt has its range in pyproject.toml, and the pin falls in that range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def test_every_pinned_runtime_dependency_is_a_package_dependency_in_range() -> None:
    declared = {Requirement(text).name.lower(): Requirement(text)
                for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    pins = [Requirement(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    assert pins
    for pin in pins:
        name = pin.name.lower()
        assert name in declared, f"{pin} is pinned in requirements.txt but not in pyproject.toml"
        version = re.sub(r"^==", "", str(pin.specifier))
        assert declared[name].specifier.contains(version), (str(pin), str(declared[name]))
    assert set(declared) == {pin.name.lower() for pin in pins}


def test_ccxt_decodes_responses_with_orjson() -> None:
    """ccxt takes orjson when it can import it (ccxt/base/exchange.py), and a backfill's JSON
    decoding then costs 0.3 ms a 1,000-bar page instead of json's 0.5: guard against an
    install or a ccxt upgrade that silently goes back to json."""
    import orjson
    from ccxt.base.exchange import Exchange

    assert Exchange.on_json_response is orjson.loads
