"""The layout's rules hold: the import contracts of pyproject.toml [tool.importlinter]."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    """core imports no domain, schemas import no services, domains form no cycle, the serving
    app never imports devtools (`lint-imports` lists the broken imports)."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout
