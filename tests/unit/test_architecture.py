"""The layout's rules, checked on every run: the import contracts of pyproject.toml, and small modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Skipped where it is not installed next to this python; CI installs it, so there it fails instead.
NEEDS_LINT_IMPORTS = pytest.mark.skipif(not LINT_IMPORTS.exists() and not os.environ.get("CI"),
                                reason="import-linter is not installed next to this python")
MAX_LINES = 450


@NEEDS_LINT_IMPORTS
def test_import_contracts_hold() -> None:
    """Layers one way, runners and workers kept apart from what they must not know, and no import cycle."""
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_modules_stay_small() -> None:
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for folder in ("app", "workers", "runners") for path in (ROOT / folder).rglob("*.py")}
    too_big = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not too_big, f"split these along their seams (over {MAX_LINES} lines): {too_big}"
