"""Benchmark: free slots and mentee bookings on a seeded 1K x 20K programme.

    .venv/bin/python -m bench.slots_bench [--server postgresql://postgres@127.0.0.1:5432]
        [--mentors 1000 --mentees 20000] [--clients 8] [--seconds 15] [--reuse] [--keep]

1. Creates the database `mentorship_bench_slots` on the server, migrates it and loads the
   programme with the real `mentorship seed` code (`--reuse` keeps an existing one).
2. Starts a real uvicorn (`create_app`, ENVIRONMENT=production, API role with RLS) in its
   own process.
3. Phases, each driven by wrk (C, 2 threads, `--clients` connections) for `--seconds`,
   every request with its own token from a list built beforehand:
   - `pair-4w`: one mentee asks for their slots with their mentor over 4 weeks (60 min);
   - `grid-mentee`: each request a random assigned mentee, a random week of the next 8
     (so over the whole mentor x week grid, cold data included);
   - `grid-mentor`: the same through `GET /api/v1/mentor/mentees/{id}/slots`;
   - `booking`: mentees (one per mentor and week) book a slot they were offered
     (`POST /api/v1/mentee/sessions`); the offers are collected first, untimed, so
     only the POSTs are measured; status codes are counted.
Prints p50/p95/p99, req/s, status codes and the server process's CPU per request per phase,
and the load average before and after.
Goals: slots p95 < 30 ms, booking p95 < 100 ms at 8 clients (quiet machine).
Needs `wrk` on PATH (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent

from app.config import Settings  # noqa: E402
from app.core.auth import mint_token  # noqa: E402
from bench import _wrk as wrk  # noqa: E402
from bench._gap_load import cpu_seconds  # noqa: E402
from bench._server import BENCH_JWT_SECRET, spawn, stop, wait_healthy  # noqa: E402
from bench._wrk import Request  # noqa: E402

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


async def _offers(base: str, wanted: list[tuple[str, dict]], concurrency: int = 8
                  ) -> list[tuple[str, str]]:
    """(mentee token, a start offered to them) for each (token, slot query) in `wanted`:
    collected before the booking phase (untimed), so only the bookings are measured."""
    found: list[tuple[str, str]] = []
    queue = list(wanted)
    rng = random.Random(3)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            while queue:
                token, params = queue.pop()
                r = await http.get("/api/v1/mentee/slots", params=params,
                                   headers={"Authorization": f"Bearer {token}"})
                slots = r.json().get("slots", []) if r.status_code == 200 else []
                if slots:
                    found.append((token, rng.choice(slots)["starts_at"]))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return found


def run(base: str, process, settings: Settings, all_pairs: list[tuple[str, str]],
        clients: int, seconds: float) -> None:
    asyncio.run(wait_healthy(base, process, within=120))
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

    def week() -> dict:
        start = monday + timedelta(weeks=rng.randint(1, 8))
        return {"from": start.isoformat(), "to": (start + timedelta(days=7)).isoformat(),
                "duration_minutes": rng.choice([30, 60, 90])}

    def get(path: str, params: dict, user: str, role: str) -> Request:
        return Request(f"{path}?{urlencode(params)}", token(user, role))

    start = datetime.now(UTC) + timedelta(minutes=5)
    pair_4w = [get("/api/v1/mentee/slots", {
        "from": start.isoformat(), "to": (start + timedelta(days=28)).isoformat(),
        "duration_minutes": 60}, one_mentee, "mentee")]
    grid_mentee = [get("/api/v1/mentee/slots", week(), mentee, "mentee")
                   for _, mentee in (rng.choice(all_pairs) for _ in range(3000))]
    grid_mentor = [get(f"/api/v1/mentor/mentees/{mentee}/slots", week(), mentor, "mentor")
                   for mentor, mentee in (rng.choice(all_pairs) for _ in range(3000))]
    # Bookings: one mentee per mentor and per week of the next 8 weeks, each taking a slot
    # it was offered (many real bookings; a few lose to capacity or a neighbour's buffer).
    by_mentor: dict[str, list[str]] = {}
    for mentor, mentee in all_pairs[1:]:
        by_mentor.setdefault(mentor, []).append(mentee)
    wanted = []
    for mentees in by_mentor.values():
        for weeks, mentee in zip(range(1, 3), mentees, strict=False):
            wk = monday + timedelta(weeks=weeks)
            wanted.append((token(mentee, "mentee"), {
                "from": wk.isoformat(), "to": (wk + timedelta(days=7)).isoformat(),
                "duration_minutes": 30}))
    rng.shuffle(wanted)
    offers = asyncio.run(_offers(base, wanted[:max(400, int(seconds * 120))]))
    booking = [Request("/api/v1/mentee/sessions", t, "POST",
                       json.dumps({"starts_at": at, "duration_minutes": 30}))
               for t, at in offers]

    async def pair_slots() -> int:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            r = await http.get(pair_4w[0].path, headers={
                "Authorization": f"Bearer {pair_4w[0].token}"})
            return len(r.json().get("slots", [])) if r.status_code == 200 else -r.status_code

    print(f"pair-4w answers {asyncio.run(pair_slots())} slots (60 min, 4 weeks)")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"{clients} clients (wrk), {seconds:.0f} s per phase; {len(booking)} bookings ready")
    wrk.run(base, grid_mentee, seconds=3, clients=clients)  # warm up pools and plans
    for name, requests in (("pair-4w", pair_4w), ("grid-mentee", grid_mentee),
                           ("grid-mentor", grid_mentor), ("booking", booking)):
        if not requests:
            print(f"{name:<12} no slot offered: nothing to request")
            continue
        cpu_before = cpu_seconds(process.pid)
        result = wrk.run(base, requests, seconds=seconds, clients=clients)
        # The server's own CPU per request: what one process spends, whatever the load.
        cpu_ms = (cpu_seconds(process.pid) - cpu_before) * 1000 / max(1, result["requests"])
        note = f"  server CPU {cpu_ms:.1f} ms/req" + (
            " (list wrapped: repeats answer 409)"
            if name == "booking" and result["requests"] > len(requests) else "")
        print(wrk.line(name, result) + note, flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


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
            run(base, process, settings, all_pairs, args.clients, args.seconds)
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
