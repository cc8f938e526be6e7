"""Benchmark: the mentor dashboard against a trivial authenticated `SELECT 1` route.

    python -m bench.dashboard_bench [--server postgresql://postgres@127.0.0.1:5432]
        [--reuse] [--seconds 10] [--explain]

1. Builds a database `mentorship_bench_dashboard` on the server (alembic upgrade head), seeded
   with COPY: 1,000 mentors x 20,000 mentees (20 each), about 200K work items, 100K sessions,
   readiness history, habit signals and flags (`--reuse` keeps an existing one).
2. Starts a real uvicorn in a separate process serving `create_app()` plus one extra route,
   `GET /bench/floor`: same middleware, JWT, role check and per-request RLS transaction
   (DbSession), then `SELECT 1`. That is the floor the stack costs.
3. In one run, drives the floor and `GET /api/v1/mentor/dashboard` with 8 and then 50
   concurrent httpx clients, each client cycling over its own mentors, and prints
   throughput and latency percentiles. Goals: dashboard throughput >= 50 % of the floor's,
   p95 < 50 ms at 8 clients.
`--explain` prints EXPLAIN ANALYZE of the dashboard's main statement (risk included) for one
mentor, under RLS.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent

from app.config import Settings  # noqa: E402
from app.core.auth import CurrentMentor, mint_token  # noqa: E402
from app.core.db import DbSession  # noqa: E402
from app.main import create_app  # noqa: E402
from bench._server import BENCH_JWT_SECRET, spawn, stop, wait_healthy  # noqa: E402

DATABASE = "mentorship_bench_dashboard"
MENTORS, PER_MENTOR = 1_000, 20  # --mentors, --mentees-per-mentor
REDIS_URL = "redis://127.0.0.1:6379/0"  # --redis-url
SESSIONS_PER_MENTOR = 100
ZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles",
         "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Africa/Lagos", "America/Sao_Paulo"]
KINDS = {"mission_review": ("high", 48), "risk_assessment": ("normal", 72),
         "goal_feedback": ("normal", 168), "session_followup": ("low", 24)}


# --- the app under test -----------------------------------------------------------------------

def bench_app():
    """uvicorn --factory target: the real app plus the floor route."""
    app = create_app()

    @app.get("/bench/floor", operation_id="bench_floor", include_in_schema=False)
    async def floor(principal: CurrentMentor, session: DbSession) -> dict:
        return {"one": await session.scalar(text("select 1"))}

    return app


# --- data ---------------------------------------------------------------------------------------

def _dsn(server: str, database: str) -> str:
    return f"{server.rstrip('/')}/{database}"


async def create_database(server: str) -> None:
    admin = await asyncpg.connect(_dsn(server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()


def migrate(server: str) -> None:
    env = {**os.environ, "DATABASE_URL": _dsn(server, DATABASE)}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env,
                   check=True, capture_output=True)


def generate(now: datetime, rng: random.Random) -> dict[str, tuple[list[str], list[tuple]]]:
    users, assignments, sessions, items, flags, readiness, signals = [], [], [], [], [], [], []
    mentors = []
    empty = json.dumps({"timezone": "UTC", "windows": []})
    for i in range(MENTORS):
        mentor_id = uuid.uuid4()
        zone = rng.choice(ZONES)
        availability = json.dumps({"timezone": zone, "windows": [
            {"weekday": d, "start": "08:00", "end": "18:00"} for d in range(5)]})
        users.append((mentor_id, f"mentor{i}@bench.test", f"Mentor {i:04d}", "mentor", zone, None,
                      ["python"], True, 10, PER_MENTOR, ["python", "career"], availability))
        mentees = []
        for j in range(PER_MENTOR):
            mentee_id = uuid.uuid4()
            mentees.append(mentee_id)
            users.append((mentee_id, f"mentee{i}-{j}@bench.test", f"Mentee {i:04d}-{j:02d}",
                          "mentee", rng.choice(ZONES), rng.choice(["5", "6", "7"]), ["python"],
                          False, 10, 20, [], empty))
            assignments.append((uuid.uuid4(), mentee_id, mentor_id, "auto", rng.random(),
                                now - timedelta(days=rng.uniform(1, 120))))
        mentors.append(mentor_id)

        # Sessions 17 h apart per mentor (so no two overlap for the mentor or a mentee),
        # from 60 days ago to about 11 days ahead.
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(
            days=60, minutes=rng.randrange(0, 60, 15))
        for k in range(SESSIONS_PER_MENTOR):
            starts = start + timedelta(hours=17 * k)
            if starts < now:
                status = rng.choices(["completed", "no_show", "cancelled"], [85, 7, 8])[0]
            else:
                status = rng.choices(["scheduled", "cancelled"], [92, 8])[0]
            sessions.append((uuid.uuid4(), mentor_id, mentees[k % PER_MENTOR], starts,
                             starts + timedelta(minutes=60), 60, status,
                             f"https://meet.jit.si/bench-{uuid.uuid4().hex[:12]}"))

        for mentee_id in mentees:
            for _ in range(rng.randint(5, 15)):  # about 10 items per mentee
                kind = rng.choice(list(KINDS))
                priority, hours = KINDS[kind]
                status = rng.choices(["done", "open", "in_progress"], [70, 20, 10])[0]
                if status == "done":
                    created = now - timedelta(days=rng.uniform(5, 90))
                else:
                    created = now - timedelta(hours=rng.uniform(1, hours * 1.3))
                due = created + timedelta(hours=hours)
                items.append((uuid.uuid4(), kind, priority, status, mentee_id,
                              f"bench:{uuid.uuid4()}", f"{kind} for {mentee_id}", due,
                              status != "done" and due < now, created,
                              due - timedelta(hours=1) if status == "done" else None))
            if rng.random() < 0.08:
                flags.append((uuid.uuid4(), mentee_id, mentor_id,
                               rng.choice(["low", "medium", "high", "critical"]), "engagement",
                               "bench note", rng.choices(["open", "resolved"], [60, 40])[0],
                               now - timedelta(days=rng.uniform(0, 40))))
            score = rng.uniform(40, 90)
            previous = None
            for days in sorted(rng.sample(range(1, 40), 4), reverse=True):
                readiness.append((uuid.uuid4(), mentee_id, score, previous,
                                  now - timedelta(days=days, hours=rng.uniform(0, 20))))
                previous, score = score, max(0.0, min(100.0, score + rng.uniform(-12, 8)))
            if rng.random() < 0.4:
                signals.append((uuid.uuid4(), mentee_id, "habit_streak_broken",
                                json.dumps({"habit": "reading", "streak_days": 9}),
                                now - timedelta(days=rng.uniform(0, 30))))
    return {
        "users": (["id", "email", "name", "role", "timezone", "tier", "interests", "is_mentor",
                   "mentor_capacity_weekly", "mentor_max_mentees", "mentor_specialties",
                   "mentor_availability"], users),
        "assignments": (["id", "mentee_id", "mentor_id", "source", "score", "started_at"],
                        assignments),
        "sessions": (["id", "mentor_id", "mentee_id", "starts_at", "ends_at",
                      "duration_minutes", "status", "meeting_url"], sessions),
        "work_items": (["id", "kind", "priority", "status", "mentee_id", "source_key", "title",
                        "due_at", "overdue", "created_at", "completed_at"], items),
        "flags": (["id", "mentee_id", "raised_by", "severity", "category", "note", "status",
                   "created_at"], flags),
        "readiness_history": (["id", "mentee_id", "score", "previous_score", "recorded_at"],
                              readiness),
        "mentee_signals": (["id", "mentee_id", "kind", "data", "occurred_at"], signals),
    }


async def seed(server: str) -> None:
    started = time.perf_counter()
    tables = generate(datetime.now(UTC), random.Random(42))
    connection = await asyncpg.connect(_dsn(server, DATABASE))
    try:
        for table, (columns, rows) in tables.items():
            await connection.copy_records_to_table(table, records=rows, columns=columns)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    counts = ", ".join(f"{len(rows):,} {table}" for table, (_, rows) in tables.items())
    print(f"seeded in {time.perf_counter() - started:.1f}s: {counts}")


async def mentor_ids(server: str) -> list[uuid.UUID]:
    connection = await asyncpg.connect(_dsn(server, DATABASE))
    try:
        rows = await connection.fetch("select id from users where role = 'mentor' order by id")
    finally:
        await connection.close()
    return [row["id"] for row in rows]


async def explain(server: str, mentor: uuid.UUID) -> None:
    """EXPLAIN ANALYZE of the dashboard's main statement as the app role, under RLS."""
    from app.services.dashboard.mentor import _DASHBOARD

    connection = await asyncpg.connect(_dsn(server.replace("postgres@", "mentorship_app@"),
                                            DATABASE))
    sql = (_DASHBOARD.text.replace(":mentor_id", "$1::uuid")
           .replace(":now", "$2::timestamptz").replace(":soon", "$3::timestamptz"))
    try:
        for _ in range(3):  # the last of three, caches warm
            async with connection.transaction():
                await connection.execute(
                    "select set_config('role', 'mentorship_mentor', true), "
                    f"set_config('app.user_id', '{mentor}', true), "
                    "set_config('app.role', 'mentor', true)")
                now = datetime.now(UTC)
                plan = await connection.fetch(
                    f"explain (analyze, buffers, costs off) {sql}", mentor, now,
                    now + timedelta(hours=24))
        print("\n".join(row[0] for row in plan))
    finally:
        await connection.close()


# --- load -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(base: str, path: str, tokens: list[str], clients: int,
                seconds: float) -> dict:
    """`clients` concurrent clients, each with its own keep-alive connection (one shared
    httpx pool serialises on its own bookkeeping at 50 connections and would measure the
    load generator), each cycling over its own mentors' tokens until `seconds` pass."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal errors
        mine = tokens[index::clients]
        n = 0
        async with httpx.AsyncClient(base_url=base, timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as http:
            while time.perf_counter() < deadline:
                token = mine[n % len(mine)]
                n += 1
                started = time.perf_counter()
                try:
                    response = await http.get(path,
                                              headers={"Authorization": f"Bearer {token}"})
                except httpx.TransportError:
                    errors += 1
                    continue
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    errors += 1
                else:
                    latencies.append(elapsed)

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - began
    return {"latencies": latencies, "wall": wall, "errors": errors}


@contextmanager
def uvicorn(server_url: str, settings: Settings, log_path: str, pool: tuple[int, int]):
    """The bench app in its own process on a free port; yields the base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": server_url, "ENVIRONMENT": "production",
           "REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"{DATABASE}:",
           "JWT_SECRET": settings.jwt_secret, "PYTHONPATH": str(ROOT),
           "DB_POOL_SIZE": str(pool[0]), "DB_MAX_OVERFLOW": str(pool[1])}
    with open(log_path, "w") as log:
        process = spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "bench.dashboard_bench:bench_app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
             "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield f"http://127.0.0.1:{port}", process
        finally:
            stop(process)


ROUTES = {"floor": "/bench/floor", "dashboard": "/api/v1/mentor/dashboard"}


async def measure(base: str, process: subprocess.Popen, tokens: list[str], seconds: float,
                  rounds: int, concurrency: list[int]) -> dict[tuple[str, int], dict[str, float]]:
    """Per concurrency: warm up, then alternate floor and dashboard slices `rounds` times,
    so a change in the machine's load hits both routes alike."""
    await wait_healthy(base, process, within=20)
    results = {}
    for clients in concurrency:
        for path in ROUTES.values():
            # Warm-up: open the pool's connections and let each one reach Postgres's
            # generic plan for the prepared statements (after 5 executions).
            await drive(base, path, tokens, clients, 3)
        slices: dict[str, list[dict]] = {name: [] for name in ROUTES}
        for _ in range(rounds):
            for name, path in ROUTES.items():
                slices[name].append(await drive(base, path, tokens, clients, seconds / rounds))
        for name, parts in slices.items():
            latencies = sorted(x for part in parts for x in part["latencies"])
            results[(name, clients)] = summarize(
                latencies, sum(p["wall"] for p in parts), sum(p["errors"] for p in parts))
    return results


def summarize(latencies: list[float], wall: float, errors: int) -> dict[str, float]:
    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"rps": len(latencies) / wall, "p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
            "mean": statistics.fmean(latencies) * 1000, "n": len(latencies), "errors": errors}


def report(results, concurrency, load_before, load_after) -> None:
    print(f"\n{'route':<10} {'clients':>7} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'n':>7} {'errors':>6}")
    for (name, clients), r in results.items():
        print(f"{name:<10} {clients:>7} {r['rps']:>8.0f} {r['p50']:>7.1f} {r['p95']:>7.1f} "
              f"{r['p99']:>7.1f} {r['n']:>7} {r['errors']:>6}")
    for clients in concurrency:
        ratio = results[("dashboard", clients)]["rps"] / results[("floor", clients)]["rps"]
        print(f"dashboard / floor throughput at {clients} clients: {ratio:.0%}")
    if ("dashboard", 8) in results:
        p95 = results[("dashboard", 8)]["p95"]
        print(f"dashboard p95 at 8 clients: {p95:.1f} ms (goal < 50 ms)")
    print(f"load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} "
          f"on {os.cpu_count()} cores")


def main() -> None:
    global DATABASE, MENTORS, PER_MENTOR, REDIS_URL  # set from the arguments below
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432",
                        help="Postgres server URL (a superuser, no database part)")
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database")
    parser.add_argument("--database", default=DATABASE, help="the scratch database's name")
    parser.add_argument("--mentors", type=int, default=MENTORS)
    parser.add_argument("--mentees-per-mentor", type=int, default=PER_MENTOR)
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--server-log", default="/tmp/dashboard_bench_server.log",
                        help="uvicorn stderr: the app logs one JSON line per request")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating floor/dashboard slices per concurrency")
    parser.add_argument("--clients", default="8,50",
                        help="comma-separated concurrency levels, e.g. 1,8,50")
    parser.add_argument("--pool-size", type=int, default=20,
                        help="the server's DB_POOL_SIZE (both routes share the pool)")
    parser.add_argument("--max-overflow", type=int, default=0,
                        help="the server's DB_MAX_OVERFLOW; overflow connections are closed "
                             "when the load dips and re-opened (and re-planned) later")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    DATABASE, MENTORS, PER_MENTOR = args.database, args.mentors, args.mentees_per_mentor
    REDIS_URL = args.redis_url
    if not args.reuse:
        asyncio.run(create_database(args.server))
        migrate(args.server)
        asyncio.run(seed(args.server))
    mentors = asyncio.run(mentor_ids(args.server))
    if args.explain:
        asyncio.run(explain(args.server, mentors[0]))

    settings = Settings(database_url=_dsn(args.server, DATABASE), jwt_secret=BENCH_JWT_SECRET)
    tokens = [mint_token(m, "mentor", settings, ttl=timedelta(hours=2)) for m in mentors]
    random.Random(7).shuffle(tokens)
    load_before = os.getloadavg()[0]
    pool = (args.pool_size, args.max_overflow)
    with uvicorn(settings.database_url, settings, args.server_log, pool) as (base, process):
        concurrency = [int(c) for c in args.clients.split(",")]
        results = asyncio.run(measure(base, process, tokens, args.seconds, args.rounds,
                                      concurrency))
    report(results, concurrency, load_before, os.getloadavg()[0])
    print(f"server pool: DB_POOL_SIZE={pool[0]} DB_MAX_OVERFLOW={pool[1]}")


if __name__ == "__main__":
    main()
