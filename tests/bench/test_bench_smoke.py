"""Every benchmark in bench/ runs as committed: each for about a second on tiny data, as
`python -m bench.<name>`, against the suite's servers, so none can rot unnoticed; and each
answers `--help` without doing anything (no database, no server, no Redis).

bench.gap_bench has its own smoke test (test_gap_bench_smoke.py). Benches that build their
database with the tests' harness copy one migrated template; the others (booking, dashboard,
slots, seed, work queue) migrate their own. Most of the time left is starting uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
# bare_app is gap_bench's anchor server (a uvicorn factory, not a bench): run by its smoke test.
BENCHES = sorted(path.stem for path in (ROOT / "bench").glob("*.py")
                 if not path.stem.startswith("_") and path.stem != "bare_app")


def _server_url(servers, database: str = "") -> str:
    """The suite's Postgres server as a plain libpq URL, with `database` or none."""
    url = make_url(servers.server_url).set(drivername="postgresql", database="x")
    server = url.render_as_string(hide_password=False).rsplit("/", 1)[0]
    return f"{server}/{database}" if database else server


def _drop(servers, database: str) -> None:
    async def drop() -> None:
        connection = await asyncpg.connect(_server_url(servers, "postgres"))
        try:
            await connection.execute(f'drop database if exists "{database}" with (force)')
        finally:
            await connection.close()
    asyncio.run(drop())


@pytest.fixture(scope="module")
def template():
    """One migrated database that the benches built on the tests' harness copy instead of
    migrating their own (TEST_TEMPLATE_DATABASE): most of a smoke run's time otherwise."""
    from tests.support.harness import ServerHarness

    harness = ServerHarness()
    harness.create()
    try:
        yield harness.name
    finally:
        harness.drop()


def _run(servers, template: str, *args: str, env: dict[str, str] | None = None,
         timeout: float = 600) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
        env={**os.environ, "TEST_DATABASE_URL": servers.server_url,
             "TEST_REDIS_URL": servers.redis_url, "REDIS_URL": servers.redis_url,
             "TEST_TEMPLATE_DATABASE": template,
             "REDIS_PREFIX": f"bench-smoke:{uuid.uuid4().hex[:8]}:", **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_every_bench_has_a_smoke_test():
    covered = set(SMOKE) | {"gap_bench"}
    assert set(BENCHES) == covered, set(BENCHES) ^ covered


def test_every_bench_answers_help_without_side_effects():
    """Servers that do not exist: a bench that did any work on --help would fail."""
    nowhere = {**os.environ, "TEST_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
               "TEST_REDIS_URL": "redis://127.0.0.1:9/0", "REDIS_URL": "redis://127.0.0.1:9/0",
               "BENCH_SERVER_URL": "postgresql://nobody@127.0.0.1:9/none"}
    running = {name: subprocess.Popen([sys.executable, "-m", f"bench.{name}", "--help"],
                                      cwd=ROOT, env=nowhere, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
               for name in BENCHES}  # at once: most of the time is importing the app
    for name, process in running.items():
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0 and "usage:" in out, f"{name}:\n{out[-2000:]}"


# name -> (arguments, a line the output must contain); {server} is the Postgres server
# (no database), {database} a fresh name the test drops afterwards.
SMOKE: dict[str, tuple[list[str], str]] = {
    "booking_bench": (["--server-url", "{server}/postgres", "--redis-url", "{redis}",
                       "--total-mentors", "5", "--total-mentees", "20", "--mentors", "2",
                       "--clients", "4", "--duration", "1", "--low-clients", "2",
                       "--low-duration", "1"], "double bookings (SQL check): 0"),
    "dashboard_bench": (["--server", "{server}", "--database", "{database}", "--mentors", "5",
                         "--mentees-per-mentor", "4", "--seconds", "1", "--rounds", "1",
                         "--clients", "2", "--redis-url", "{redis}",
                         "--server-log", "{log}"], "dashboard"),
    "events_bench": (["--mentors", "5", "--seconds", "1", "--single-seconds", "1",
                      "--relay-seconds", "1", "--clients", "1", "--single-clients", "2",
                      "--rate", "20", "--warmup", "0.5"], "relay lag"),
    "export_bench": (["--mentors", "5", "--mentees", "20", "--proposal-runs", "1",
                      "--repeat", "1"], "median"),
    "matching_bench": (["--mentees", "20", "--mentors", "5", "--assigned", "5"],
                       "execute_matching_run"),
    "ops_metrics": (["--mentors", "5", "--refreshes", "2", "--scrapes", "5"],
                    "/metrics scrape"),
    "overload_bench": (["--mentors", "5", "--mentees", "20", "--seconds", "1", "--tokens", "5",
                        "--connections", "20", "--capacity-connections", "2",
                        "--no-baseline", "--no-hammer"],
                       "| admission limit | 20 |"),
    "prioritizer_bench": (["--items", "1000"], "seeded 1000 work items"),
    "retention_bench": (["--rows", "2000", "--pending", "10"], "purge_expired"),
    "relationships_bench": (["--mentors", "5", "--mentees", "20", "--seconds", "1",
                             "--clients", "2", "--port", "{port}"], "GET /api/v1/director"),
    "seed_bench": (["--server-url", "{server}/postgres", "--mentors", "5", "--mentees", "20"],
                   "mentorship seed --mentors 5 --mentees 20"),
    "slots_bench": (["--server", "{server}", "--database", "{database}", "--mentors", "5",
                     "--mentees", "20", "--clients", "2", "--seconds", "1",
                     "--server-log", "{log}"], "slots"),
    "sse_bench": (["all", "--streams", "5", "--mentors", "5", "--rate", "10",
                   "--seconds", "1"], "cores"),
    "workqueue_bench": (["--database", "{database}", "--mentors", "5", "--seconds", "1",
                         "--warmup", "0.5", "--clients", "2"], "workqueue"),
}
NEEDS_WRK = {"booking_bench", "overload_bench", "relationships_bench", "slots_bench"}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_bench_runs_as_committed(name, servers, template, tmp_path):
    if name in NEEDS_WRK:
        require_tool("wrk")
    arguments, expected = SMOKE[name]
    database = f"mentorship_bench_smoke_{uuid.uuid4().hex[:8]}"
    from tests.support.live import free_port

    values = {"server": _server_url(servers), "redis": servers.redis_url,
              "database": database, "log": str(tmp_path / "server.log"),
              "port": str(free_port())}
    try:
        out = _run(servers, template, f"bench.{name}", *(a.format(**values) for a in arguments),
                   env={"BENCH_SERVER_URL": _server_url(servers, "postgres")})
    finally:
        _drop(servers, database)
    assert expected in out, out[-3000:]
