"""The SPA's TypeScript types: generated from /openapi.json with openapi-typescript (pinned,
npm), committed in clients/typescript/schema.d.ts, and used by clients/typescript/usage.ts,
which `tsc --strict` must accept. A spec change that would break the SPA fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"


def _require_npm() -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        message = "needs `node` and `npm`: apt-get install nodejs npm"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true: a missing tool is a failure")
        pytest.skip(message)


def test_committed_types_match_the_spec_and_the_spa_usage_type_checks(tmp_path):
    _require_npm()
    fresh = tmp_path / "schema.d.ts"
    subprocess.run([str(ROOT / "scripts" / "generate-ts-client"), str(fresh)], cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    committed = (CLIENT / "schema.d.ts").read_text()
    assert fresh.read_text() == committed, (
        "clients/typescript/schema.d.ts is stale: run `make client` and commit it")
    tsc = ROOT / ".cache" / "npm-ts" / "node_modules" / ".bin" / "tsc"
    result = subprocess.run([str(tsc), "-p", str(CLIENT / "tsconfig.json")], cwd=CLIENT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
