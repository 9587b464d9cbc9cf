"""The layers of design.md section 8, checked by import-linter over the real import graph."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is in requirements-dev.txt; install it"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def test_no_product_module_imports_the_tests() -> None:
    """Also the dynamic form import-linter cannot see: importlib with a 'tests.' string."""
    offenders = [str(path.relative_to(ROOT)) for package in ("core", "supervisor", "worker", "simulator",
                                                               "demo", "bench")
                 for path in (ROOT / package).rglob("*.py")
                 if "tests." in path.read_text() and "import" in path.read_text()
                 and any(line.lstrip().startswith(("from tests", "import tests")) or "\"tests." in line
                         for line in path.read_text().splitlines())]
    assert offenders == []
