"""Benchmark: free slots and mentee bookings on a seeded 1K x 20K programme.

    .venv/bin/python -m bench.slots_bench [--server postgresql://postgres@127.0.0.1:5432]
        [--mentors 1000 --mentees 20000] [--clients 8] [--seconds 15] [--reuse] [--keep]

1. Creates the database `mentorship_bench_slots` on the server, migrates it and loads the
   programme with the real `mentorship seed` code (`--reuse` keeps an existing one).
2. Starts a real uvicorn (`create_app`, ENVIRONMENT=production, API role with RLS) in its
   own process.
3. Phases, each with `--clients` concurrent httpx clients for `--seconds`:
   - `pair-4w`: one mentee asks for their slots with their mentor over 4 weeks (60 min);
   - `grid-mentee`: each request a random assigned mentee, a random week of the next 8
     (so over the whole mentor x week grid, cold data included);
   - `grid-mentor`: the same through `GET /api/v1/mentor/mentees/{id}/slots`;
   - `booking`: each client takes a slot its mentee was offered and books it
     (`POST /api/v1/mentee/sessions`); only the POST is timed; then counts outcomes.
Goals: slots p95 < 30 ms, booking p95 < 100 ms at 8 clients (quiet machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent

from app.config import Settings  # noqa: E402
from app.core.auth import mint_token  # noqa: E402
from bench._server import BENCH_JWT_SECRET, spawn, stop, wait_healthy  # noqa: E402

DATABASE = "mentorship_bench_slots"


def _dsn(server: str, database: str) -> str:
    return f"{server.rstrip('/')}/{database}"


async def prepare(server: str, mentors: int, mentees: int) -> None:
    from app.devtools.migrate import upgrade
    from app.devtools.seed import seed

    admin = await asyncpg.connect(_dsn(server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    url = _dsn(server, DATABASE).replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade, url, configure_logger=False)
    started = time.perf_counter()
    result = await seed(Settings(database_url=url), mentors=mentors, mentees=mentees)
    print(f"seeded {sum(result.counts.values()):,} rows in {time.perf_counter() - started:.1f} s")


async def pairs(server: str) -> list[tuple[str, str]]:
    """(mentor_id, mentee_id) of every active assignment whose mentor has windows."""
    connection = await asyncpg.connect(_dsn(server, DATABASE))
    try:
        rows = await connection.fetch(
            "select a.mentor_id::text, a.mentee_id::text from assignments a "
            "join users u on u.id = a.mentor_id where a.ended_at is null "
            "and jsonb_array_length(u.mentor_availability->'windows') > 0")
    finally:
        await connection.close()
    return [(r[0], r[1]) for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn(server: str, log_path: str):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": _dsn(server, DATABASE), "ENVIRONMENT": "production",
           "JWT_SECRET": BENCH_JWT_SECRET, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        process = spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host",
             "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield f"http://127.0.0.1:{port}", process
        finally:
            stop(process)


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return (f"n={len(values):>5}  p50 {statistics.median(values):6.1f} ms  "
            f"p95 {q[94]:6.1f} ms  p99 {q[98]:6.1f} ms")


async def drive(base: str, seconds: float, clients: int, request) -> tuple[list[float], Counter]:
    latencies: list[float] = []
    outcomes: Counter = Counter()
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        rng = random.Random(i)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while time.perf_counter() < deadline:
                elapsed, outcome = await request(http, rng)
                if elapsed is not None:
                    latencies.append(elapsed)
                outcomes[outcome] += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, outcomes


async def run(base: str, process, settings: Settings, all_pairs: list[tuple[str, str]],
              clients: int, seconds: float) -> None:
    await wait_healthy(base, process, within=30)
    rng = random.Random(1)
    rng.shuffle(all_pairs)
    tokens: dict[str, str] = {}

    def token(user_id: str, role: str) -> str:
        if user_id not in tokens:
            tokens[user_id] = mint_token(user_id, role, settings, ttl=timedelta(hours=2))
        return tokens[user_id]

    monday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday -= timedelta(days=monday.weekday())
    one_mentor, one_mentee = all_pairs[0]

    async def timed(http, method, url, headers, **kw):
        started = time.perf_counter()
        response = await http.request(method, url, headers=headers, **kw)
        return (time.perf_counter() - started) * 1000, response

    async def pair_4w(http, rng):
        start = datetime.now(UTC) + timedelta(minutes=5)
        elapsed, r = await timed(http, "GET", "/api/v1/mentee/slots",
                                 {"Authorization": f"Bearer {token(one_mentee, 'mentee')}"},
                                 params={"from": start.isoformat(),
                                         "to": (start + timedelta(days=28)).isoformat(),
                                         "duration_minutes": 60})
        return elapsed, f"{r.status_code} ({len(r.json().get('slots', []))} slots)" \
            if r.status_code == 200 else str(r.status_code)

    def week(rng) -> dict:
        start = monday + timedelta(weeks=rng.randint(1, 8))
        return {"from": start.isoformat(), "to": (start + timedelta(days=7)).isoformat(),
                "duration_minutes": rng.choice([30, 60, 90])}

    async def grid_mentee(http, rng):
        mentor, mentee = rng.choice(all_pairs)
        elapsed, r = await timed(http, "GET", "/api/v1/mentee/slots",
                                 {"Authorization": f"Bearer {token(mentee, 'mentee')}"},
                                 params=week(rng))
        return elapsed, str(r.status_code)

    async def grid_mentor(http, rng):
        mentor, mentee = rng.choice(all_pairs)
        elapsed, r = await timed(http, "GET", f"/api/v1/mentor/mentees/{mentee}/slots",
                                 {"Authorization": f"Bearer {token(mentor, 'mentor')}"},
                                 params=week(rng))
        return elapsed, str(r.status_code)

    async def booking(http, rng):
        mentor, mentee = rng.choice(all_pairs[1:])
        headers = {"Authorization": f"Bearer {token(mentee, 'mentee')}"}
        r = await http.get("/api/v1/mentee/slots", headers=headers, params=week(rng))
        slots = r.json().get("slots", []) if r.status_code == 200 else []
        if not slots:
            return None, "no slot offered"
        pick = rng.choice(slots)
        elapsed, r = await timed(http, "POST", "/api/v1/mentee/sessions", headers,
                                 json={"starts_at": pick["starts_at"], "duration_minutes": 30})
        code = r.json().get("code") if r.status_code >= 400 else None
        return elapsed, f"{r.status_code} {code or ''}".strip()

    print(f"load average before: {os.getloadavg()[0]:.1f}; {clients} clients, {seconds:.0f} s "
          "per phase")
    await drive(base, 3, clients, grid_mentee)  # warm up pools and plans
    for name, request in (("pair-4w", pair_4w), ("grid-mentee", grid_mentee),
                          ("grid-mentor", grid_mentor), ("booking", booking)):
        latencies, outcomes = await drive(base, seconds, clients, request)
        rate = len(latencies) / seconds
        print(f"{name:<12} {percentiles(latencies)}  {rate:6.1f} req/s  "
              f"{dict(outcomes.most_common(4))}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    global DATABASE  # set from the arguments below
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database")
    parser.add_argument("--keep", action="store_true", help="do not drop it afterwards")
    parser.add_argument("--server-log", default="/tmp/slots_bench_server.log")
    parser.add_argument("--database", default=DATABASE, help="the scratch database's name")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    DATABASE = args.database
    if not args.reuse:
        asyncio.run(prepare(args.server, args.mentors, args.mentees))
    settings = Settings(database_url=_dsn(args.server, DATABASE), jwt_secret=BENCH_JWT_SECRET)
    all_pairs = asyncio.run(pairs(args.server))
    try:
        with uvicorn(args.server, args.server_log) as (base, process):
            asyncio.run(run(base, process, settings, all_pairs, args.clients, args.seconds))
    finally:
        if not (args.keep or args.reuse):
            async def drop() -> None:
                admin = await asyncpg.connect(_dsn(args.server, "postgres"))
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
                finally:
                    await admin.close()
            asyncio.run(drop())


if __name__ == "__main__":
    main()
