"""The per-request gap benchmark runs as committed (tiny data, one short round)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]


def test_gap_bench_runs_and_reports_every_route(servers):
    require_tool("wrk")
    result = subprocess.run(
        [sys.executable, "-m", "bench.gap_bench", "--mentors", "5", "--mentees", "20",
         "--seconds", "1", "--rounds", "1", "--tokens", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        # the suite's servers (127.0.0.1 or the embedded ones)
        env={**os.environ, "TEST_DATABASE_URL": servers.server_url,
             "TEST_REDIS_URL": servers.redis_url})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for route in ("floor (bare stack)", "/api/v1/mentor/profile", "/api/v1/mentor/dashboard",
                  "/api/v1/mentor/workqueue", "POST /api/v1/mentor/sessions (booking)",
                  "POST /api/v1/events (one event per request)"):
        assert route in result.stdout
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")
            for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    assert "events/s" in rows["POST /api/v1/events (one event per request)"][2]
    # the server's CPU per request was measured for every route
    assert all(float(row[6]) > 0 for name, row in rows.items() if name != "route")
    help_text = subprocess.run([sys.executable, "-m", "bench.gap_bench", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "usage" in help_text.stdout
