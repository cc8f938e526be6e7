"""Work queue benchmark: GET /api/v1/mentor/workqueue against a real uvicorn.

Seeds (once, into its own database) 1,000 mentors x 20,000 mentees (20 each), 200,000 work
items (10 per mentee: about half done, the rest open or in progress, due dates spread from 3
days ago to a week ahead) and 100,000 sessions. Then, in one run, drives the work queue and
a floor route (authenticated, one RLS transaction running `SELECT 1`, through the same app
stack) with 8 and 50 concurrent clients, each request as a random one of the 1,000 mentors,
and prints throughput and p50/p95/p99 latency.

    python -m bench.workqueue_bench                  # seed if needed, then run
    python -m bench.workqueue_bench --reseed --seconds 20

Environment: BENCH_SERVER_URL (default postgresql://postgres@127.0.0.1:5432/postgres, a
superuser that may create the database), REDIS_URL (default redis://127.0.0.1:6379/0).
The floor route lives only in this file's app factory (`create_bench_app`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
import uvloop
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent

from app.config import Settings  # noqa: E402
from app.core.auth import CurrentMentor, Principal, mint_token  # noqa: E402
from app.core.db import Database, DbSession  # noqa: E402
from app.core.sql import DriverQuery, driver_connection  # noqa: E402
from app.services.workqueue.queue import WorkQueueFilters, list_work_queue  # noqa: E402
from bench._server import BENCH_JWT_SECRET, spawn, stop, wait_healthy  # noqa: E402

DB_NAME = "mentorship_bench_workqueue"
MENTORS, MENTEES_PER_MENTOR, ITEMS_PER_MENTEE, SESSIONS_PER_MENTEE = 1000, 20, 10, 5


def create_bench_app():
    """The real app plus the floor route: `uvicorn --factory bench.workqueue_bench:...`."""
    from app.main import create_app

    app = create_app()

    @app.get("/bench/floor", operation_id="bench_floor", include_in_schema=False)
    async def floor(mentor: CurrentMentor, session: DbSession) -> dict[str, int]:
        return {"ok": await session.scalar(text("select 1"))}

    return app


# --- seeding ----------------------------------------------------------------------------

SEED_SQL = [
    # Deterministic ids (md5 -> uuid) so tokens can be minted without reading back.
    f"""insert into users (id, email, name, role, timezone, is_mentor, mentor_capacity_weekly,
                         mentor_max_mentees, mentor_specialties, mentor_availability)
       select md5('mentor' || g)::uuid, 'mentor' || g || '@bench.test', 'Mentor ' || g,
              'mentor', (array['UTC','Europe/London','America/New_York','Asia/Kolkata'])[1 + g % 4],
              true, 10 + g % 3, {MENTEES_PER_MENTOR} + g % 5, array['python','career'],
              jsonb_build_object('timezone', (array['UTC','Europe/London','America/New_York',
                'Asia/Kolkata'])[1 + g % 4], 'windows', '[]'::jsonb)
         from generate_series(1, {MENTORS}) g""",
    f"""insert into users (id, email, name, role, timezone, tier, interests)
       select md5('mentee' || g)::uuid, 'mentee' || g || '@bench.test', 'Mentee ' || g,
              'mentee', 'UTC', (1 + g % 7)::text, array['python']
         from generate_series(1, {MENTORS * MENTEES_PER_MENTOR}) g""",
    f"""insert into assignments (id, mentee_id, mentor_id, source, started_at)
       select gen_random_uuid(), md5('mentee' || g)::uuid,
              md5('mentor' || (1 + (g - 1) % {MENTORS}))::uuid, 'auto', now() - interval '60 days'
         from generate_series(1, {MENTORS * MENTEES_PER_MENTOR}) g""",
    # random() in the sub-select's target list: evaluated once per row.
    f"""insert into work_items (id, kind, priority, status, mentee_id, source_key, title,
                              due_at, created_at, overdue, started_at, completed_at, completed_by)
       select gen_random_uuid(), kind, priority, status, mentee, 'bench:' || g || ':' || k,
              'Work item ' || k || ' for mentee ' || g, due, due - interval '48 hours',
              status <> 'done' and due < now(),
              case when status = 'in_progress' then due - interval '24 hours' end,
              case when status = 'done' then due - interval '1 hour' end,
              case when status = 'done' then mentor end
         from (select g, k, md5('mentee' || g)::uuid as mentee,
                      md5('mentor' || (1 + (g - 1) % {MENTORS}))::uuid as mentor,
                      (array['mission_review','risk_assessment','goal_feedback',
                             'session_followup'])[1 + (g + k) % 4] as kind,
                      (array['low','normal','normal','high','high','urgent'])[1 + (g * 7 + k) % 6]
                        as priority,
                      case when r < 0.5 then 'done' when r < 0.9 then 'open'
                           else 'in_progress' end as status,
                      now() + (r2 * 10 - 3) * interval '1 day' as due
                 from (select g, k, random() as r, random() as r2
                         from generate_series(1, {MENTORS * MENTEES_PER_MENTOR}) g,
                              generate_series(1, {ITEMS_PER_MENTEE}) k) rnd) s""",
    # Each mentor's 100 sessions are 17 h apart (about 10 a week, the weekly capacity), from
    # 8 weeks ago to 2 weeks ahead: no overlap for the mentor or the mentee.
    f"""insert into sessions (id, mentor_id, mentee_id, starts_at, ends_at, duration_minutes,
                            status, meeting_url)
       select gen_random_uuid(), md5('mentor' || m)::uuid,
              md5('mentee' || (m + {MENTORS} * (j % {MENTEES_PER_MENTOR})))::uuid,
              t, t + interval '60 minutes', 60,
              case when t > now() then 'scheduled' when j % 10 = 0 then 'no_show'
                   else 'completed' end,
              'https://meet.jit.si/bench-' || m || '-' || j
         from generate_series(1, {MENTORS}) m,
              generate_series(0, {MENTEES_PER_MENTOR * SESSIONS_PER_MENTEE - 1}) j,
              lateral (select date_trunc('hour', now()) - interval '56 days'
                              + j * interval '17 hours' as t) x""",
]


async def _prepare_database(server_url: str, reseed: bool) -> tuple[str, int]:
    """Create the bench database if needed; return its URL and how many items it holds."""
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("select 1 from pg_database where datname = $1", DB_NAME)
        if exists and reseed:
            await admin.execute(f'drop database "{DB_NAME}" with (force)')
            exists = None
        if not exists:
            await admin.execute(f'create database "{DB_NAME}"')
    finally:
        await admin.close()
    db_url = make_url(server_url).set(database=DB_NAME).render_as_string(hide_password=False)
    conn = await asyncpg.connect(db_url)
    try:
        migrated = await conn.fetchval("select to_regclass('public.work_items') is not null")
        count = await conn.fetchval("select count(*) from work_items") if migrated else 0
    finally:
        await conn.close()
    return db_url, count


async def _insert_rows(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for sql in SEED_SQL:
            started = time.perf_counter()
            status = await conn.execute(sql)
            print(f"  {status:<22} {time.perf_counter() - started:6.1f} s", flush=True)
        await conn.execute("vacuum analyze")  # as autovacuum would have, by then
    finally:
        await conn.close()


DIRECTOR_SQL = """insert into users (id, email, name, role)
                  values (md5('director1')::uuid, 'director1@bench.test', 'Director 1', 'director')
                  on conflict do nothing"""


async def _ensure_director(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(DIRECTOR_SQL)
    finally:
        await conn.close()


def seed(server_url: str, reseed: bool) -> str:
    db_url, count = asyncio.run(_prepare_database(server_url, reseed))
    if count:
        print(f"using seeded database {DB_NAME} ({count} work items)")
        asyncio.run(_ensure_director(db_url))
        return db_url
    print(f"seeding {DB_NAME} ...", flush=True)
    env = {**os.environ, "DATABASE_URL": db_url}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    asyncio.run(_insert_rows(db_url))
    asyncio.run(_ensure_director(db_url))
    return db_url


# --- load ---------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_ms: float = 0.0  # API process CPU (user + system) per request


    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def line(self) -> str:
        return (f"| {self.name} | {self.clients} | {self.requests / self.seconds:,.0f} | "
                f"{self.pct(50):.1f} | {self.pct(95):.1f} | {self.pct(99):.1f} | "
                f"{self.server_cpu_ms:.2f} | {self.errors} |")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children (uvicorn's workers), from /proc: a
    measure of the app's own cost that the machine's other load does not inflate."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   raw: bytes) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection; returns the status code.
    A minimal client, so the load generator spends little of the machine's CPU."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def drive(base: str, path: str, tokens: list[str], clients: int, seconds: float,
                name: str, params: dict | None = None) -> Result:
    """`clients` connections, each sending requests back to back for `seconds`, each request
    as a random mentor."""
    host, port = base.removeprefix("http://").split(":")
    target = path + ("?" + urlencode(params) if params else "")
    requests = [
        (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
         f"Accept: application/json\r\n\r\n").encode()
        for token in tokens
    ]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed_: int) -> None:
        nonlocal errors
        rng = random.Random(seed_)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status = await _request(reader, writer, rng.choice(requests))
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    return Result(name, clients, len(latencies), errors, elapsed, latencies)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def explain(db_url: str, mentor_id: uuid.UUID) -> str:
    """EXPLAIN ANALYZE of the work queue's page query for one mentor, as the API role under
    RLS (the statement is captured from the real service call, then re-run with EXPLAIN)."""
    settings = Settings(database_url=db_url, jwt_secret=BENCH_JWT_SECRET)
    database = Database.connect(settings.api_db_url, settings)
    captured: list[tuple[DriverQuery, list]] = []
    real_fetch = DriverQuery.fetch

    async def grab(query: DriverQuery, session, params):  # the page query runs on the driver
        captured.append((query, query.arguments(params)))
        return await real_fetch(query, session, params)

    DriverQuery.fetch = grab
    try:
        async with database.transaction(Principal(mentor_id, "mentor")) as session:
            await list_work_queue(session, mentor_id=mentor_id, filters=WorkQueueFilters(),
                                  limit=50)
            query, arguments = next((q, a) for q, a in captured if "FROM work_items" in q.sql)
            driver = await driver_connection(session)
            plan = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + query.sql,
                                      *arguments)
            return "\n".join(row[0] for row in plan)
    finally:
        DriverQuery.fetch = real_fetch
        await database.dispose()


def mentor_id(n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"mentor{n}".encode()).hexdigest())


async def run_load(base: str, tokens: list[str], clients_list: list[int], seconds: float,
                   warmup: float, server_pid: int, director_token: str) -> None:
    await wait_healthy(base, within=30)
    scenarios = [
        ("floor: GET /bench/floor (SELECT 1)", "/bench/floor", None),
        ("GET /api/v1/mentor/workqueue", "/api/v1/mentor/workqueue", None),
        ("GET /api/v1/mentor/workqueue?overdue=true&kind=mission_review",
         "/api/v1/mentor/workqueue", {"overdue": "true", "kind": "mission_review"}),
    ]
    await drive(base, "/api/v1/mentor/workqueue", tokens, 8, warmup, "warmup")
    results = []
    for clients in clients_list:
        for name, path, params in scenarios:
            cpu_before = process_cpu_seconds(server_pid)
            result = await drive(base, path, tokens, clients, seconds, name, params)
            result.server_cpu_ms = ((process_cpu_seconds(server_pid) - cpu_before) * 1000
                                    / max(result.requests, 1))
            results.append(result)
            print(result.line(), flush=True)
    print()
    print("| route | clients | req/s | p50 ms | p95 ms | p99 ms | API CPU ms/req | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        print(result.line())
    for clients in clients_list:
        floor = next(r for r in results if r.clients == clients and "floor" in r.name)
        queue = next(r for r in results if r.clients == clients and r.name.endswith("queue"))
        ratio = (queue.requests / queue.seconds) / (floor.requests / floor.seconds)
        print(f"{clients} clients: work queue throughput = {ratio:.0%} of the floor")
    async with httpx.AsyncClient(base_url=base) as http:
        sizes = [len((await http.get("/api/v1/mentor/workqueue", headers={
            "Authorization": f"Bearer {t}"})).json()["items"]) for t in tokens[:50]]
    print(f"items per default page (first 50 mentors): median {statistics.median(sizes)}, "
          f"max {max(sizes)}")
    # The directors' mentor list (3 set-based queries per page), one client, sequential.
    for sort in ("name", "-load"):
        result = await drive(base, "/api/v1/director/mentors", [director_token], 1,
                             min(seconds, 5), f"GET /api/v1/director/mentors?sort={sort}",
                             {"sort": sort, "limit": 50})
        print(result.line())


def main() -> None:
    global DB_NAME, MENTORS  # set from the arguments below
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", default="8,50")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--database", default=DB_NAME, help="the database's name (reused "
                        "when already seeded, unless --reseed)")
    parser.add_argument("--mentors", type=int, default=MENTORS)
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    DB_NAME, MENTORS = args.database, args.mentors

    server_url = os.environ.get("BENCH_SERVER_URL",
                                "postgresql://postgres@127.0.0.1:5432/postgres")
    db_url = seed(server_url, args.reseed)
    if args.seed_only:
        return
    settings = Settings(database_url=db_url, jwt_secret=BENCH_JWT_SECRET)
    tokens = [mint_token(mentor_id(g), "mentor", settings) for g in range(1, MENTORS + 1)]
    print(asyncio.run(explain(db_url, mentor_id(1))))
    print(f"uvicorn workers: {args.workers}; load average before the run: {os.getloadavg()}")

    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url,
           "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
           "REDIS_PREFIX": f"{DB_NAME}:", "ENVIRONMENT": "production",
           "JWT_SECRET": BENCH_JWT_SECRET}
    server = spawn(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.workqueue_bench:create_bench_app",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        uvloop.run(run_load(f"http://127.0.0.1:{port}", tokens,
                             [int(c) for c in args.clients.split(",")], args.seconds,
                             args.warmup, server.pid,
                             mint_token(uuid.UUID(hashlib.md5(b"director1").hexdigest()),
                                        "director", settings)))
    finally:
        stop(server)


if __name__ == "__main__":
    main()
