"""Benchmark: the directors' waiting list and cockpit at 1K mentors x 20K mentees.

    .venv/bin/python -m bench.relationships_bench [--mentors 1000] [--mentees 20000]
        [--seconds 20] [--clients 8] [--rounds 1] [--database-url URL]

1. Creates a fresh database (the tests' harness: `TEST_DATABASE_URL` or the embedded
   server), migrates it and loads `mentorship seed --mentors 1000 --mentees 20000` (the
   same `seed()`), unless `--database-url` names an already seeded one. Then, as a
   matcher run would leave it, a finished run whose `unplaced` map names every waiting
   mentee (about 3,000: the waiting list reads each row's `last_match_reason` from it).
2. Starts one real uvicorn process (`create_app()`, default settings: the token's identity
   check cached for AUTH_CACHE_SECONDS) and drives it with wrk (C, `--clients`
   connections, 2 threads), as the seeded director, each request picking at random:
   - `GET /api/v1/director/waiting?limit=50` on one of the list's pages (its cursors are
     collected first by walking the whole list), and
   - `GET /api/v1/director/mentees/{id}/cockpit` for one of 2,000 random mentees.
3. Prints req/s, latency percentiles and CPU per request per route (the uvicorn process's
   and its Postgres backends', from /proc: the figures a shared machine distorts least),
   and the load average. Goal: p95 < 50 ms at 8 clients on a quiet machine.
Needs `wrk` on PATH (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench._wrk import run_script

ROOT = Path(__file__).resolve().parent.parent

LUA = """
local paths = {%(paths)s}
local token = "%(token)s"
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Authorization"] = "Bearer " .. token})
end
done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%.3f, "non_2xx": %%d, "socket_errors": %%d, '
    .. '"p50_ms": %%.2f, "p95_ms": %%.2f, "p99_ms": %%.2f, "max_ms": %%.2f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


# What `mentorship match` records when the programme has fewer places than mentees.
FINISHED_RUN = """
    insert into matching_runs (id, job_id, status, started_at, finished_at, assigned_count,
                               unplaced_count, unplaced)
    select gen_random_uuid(), 'bench:relationships', 'done', now() - interval '1 minute',
           now(), 0, count(*), coalesce(jsonb_object_agg(mentee_id::text, 'no_capacity'), '{}')
      from waiting_mentees
"""


def wrk(url: str, paths: list[str], token: str, *, seconds: int, clients: int) -> dict:
    quoted = ", ".join(json.dumps(p) for p in paths)
    script = LUA % {"paths": quoted, "token": token, "seed": random.randrange(1 << 30)}
    return run_script(url, script, ["-t2", f"-c{clients}", f"-d{seconds}s", "--latency"])


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of each process so far (/proc/PID/stat, fields 14 and 15)."""
    tick, seconds = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended (a backend whose connection closed)
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def measured(url: str, paths: list[str], token: str, *, seconds: int, clients: int,
             server: int, backends) -> dict:
    """One wrk run plus the CPU per request of the server and of its Postgres backends
    (`backends()`: their pids; a backend that starts during the run counts from 0)."""
    before_pids = backends()
    server_before, pg_before = cpu_seconds([server])[server], cpu_seconds(before_pids)
    result = wrk(url, paths, token, seconds=seconds, clients=clients)
    server_after, pg_after = cpu_seconds([server])[server], cpu_seconds(backends())
    requests = max(result["requests"], 1)
    pg = sum(after - pg_before.get(pid, 0.0) for pid, after in pg_after.items())
    return {**result, "app_cpu_ms": 1000 * (server_after - server_before) / requests,
            "pg_cpu_ms": 1000 * pg / requests}


async def _collect(base: str, token: str, seeded) -> tuple[list[str], list[str]]:
    """Every page of the waiting list (as paths) and 2,000 random mentees' cockpits."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    pages, cursor = ["/api/v1/director/waiting?limit=50"], None
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while True:
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            response = await http.get("/api/v1/director/waiting", headers=headers,
                                      params=params)
            response.raise_for_status()
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
            pages.append(f"/api/v1/director/waiting?limit=50&cursor={cursor}")
    mentees = await seeded.fetch("select id from users where role = 'mentee'")
    chosen = random.Random(7).sample([r["id"] for r in mentees], min(2000, len(mentees)))
    return pages, [f"/api/v1/director/mentees/{m}/cockpit" for m in chosen]


class Seeded:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def fetch(self, sql: str, *args):
        import asyncpg

        connection = await asyncpg.connect(self.dsn)
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", help="an already seeded database (else a fresh "
                                               "one is created, seeded and dropped)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure both routes this many times in turn")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
        return asyncio.run(measure(args, args.database_url))
    from bench._database import BenchDatabase  # sets the harness's environment
    from tests.support.harness import _plain_dsn

    with BenchDatabase() as bench:  # created (and dropped) outside the event loop
        return asyncio.run(seed_and_measure(args, bench, _plain_dsn(bench.servers.database_url)))


async def seed_and_measure(args: argparse.Namespace, bench, dsn: str) -> int:
    from app.devtools.seed import seed

    started = time.perf_counter()
    await seed(bench.settings, mentors=args.mentors, mentees=args.mentees)
    await bench.sql(FINISHED_RUN)
    print(f"seeded {args.mentors} x {args.mentees} in {time.perf_counter() - started:.0f} s",
          flush=True)
    return await measure(args, dsn)


async def measure(args: argparse.Namespace, dsn: str) -> int:
    from app.config import get_settings
    from app.core.auth import mint_token
    from bench._server import spawn, stop, wait_healthy

    get_settings.cache_clear()
    settings = get_settings()
    seeded = Seeded(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    [director] = await seeded.fetch(
        "select id from users where role = 'director' and active order by email limit 1")
    token = mint_token(director["id"], "director", settings, ttl=timedelta(hours=2))
    base = f"http://127.0.0.1:{args.port}"
    server = spawn(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port",
         str(args.port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_healthy(base, server)
        pages, cockpits = await _collect(base, token, seeded)
        print(f"waiting list: {len(pages)} pages of 50; cockpits of {len(cockpits)} mentees")
        wrk(base, pages + cockpits, token, seconds=3, clients=args.clients)  # warm-up
        database = dsn.rsplit("/", 1)[1].split("?")[0]

        def backends() -> list[int]:
            return [row[0] for row in asyncio.run(seeded.fetch(
                "select pid from pg_stat_activity where datname = $1 "
                "and backend_type = 'client backend' and pid <> pg_backend_pid()", database))]

        rows = []
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, paths in (("GET /api/v1/director/waiting", pages),
                                ("GET /api/v1/director/mentees/{id}/cockpit", cockpits)):
                result = await asyncio.to_thread(
                    measured, base, paths, token, seconds=args.seconds,
                    clients=args.clients, server=server.pid, backends=backends)
                rows.append((name, result))
        print(f"\n{args.clients} clients, {args.seconds} s each, load average "
              f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
        print(f"{'route':<45} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
              f"{'non-2xx':>8} {'app CPU ms/req':>15} {'PG CPU ms/req':>14}")
        for name, r in rows:
            print(f"{name:<45} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
                  f"{r['p99_ms']:>8.1f} {r['non_2xx'] + r['socket_errors']:>8} "
                  f"{r['app_cpu_ms']:>15.2f} {r['pg_cpu_ms']:>14.2f}")
        return 0 if all(r["non_2xx"] == 0 for _, r in rows) else 1
    finally:
        stop(server)


if __name__ == "__main__":
    sys.exit(main())
