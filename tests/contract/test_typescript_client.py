"""The SPA's TypeScript types: generated from /openapi.json with openapi-typescript (pinned,
npm), committed in clients/typescript/schema.d.ts, and used by clients/typescript/usage.ts,
which `tsc --strict` must accept. A spec change that would break the SPA fails here."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"


def test_committed_types_match_the_spec_and_the_spa_usage_type_checks(tmp_path):
    require_tool("npm")
    require_tool("node")
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
