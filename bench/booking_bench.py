"""Booking under load: a real uvicorn (separate process) on a seeded programme.

    python -m bench.booking_bench            # defaults below
    python -m bench.booking_bench --clients 200 --duration 30 --low-clients 8

1. Creates a scratch database on SERVER_URL, migrates it (`alembic upgrade head`) and seeds
   1,000 mentors x 20,000 mentees (20 each, every mentor 10 weekly slots, Mon-Fri 08:00-20:00
   windows in one of four time zones) plus a history of 40,000 completed sessions.
2. Starts `uvicorn --factory app.main:create_app` in its own process (API role, RLS on).
3. Phase "load": `--clients` wrk connections (C, 2 threads: the load generator takes
   little CPU; the bookings are drawn beforehand) book 60-minute sessions across
   `--mentors` mentors for `--duration` s. Slots are drawn from `--weeks` weeks of each
   mentor's windows, so both double bookings and full weeks happen.
4. Phase "latency": `--low-clients` clients on another `--mentors` mentors, slots from
   `--low-weeks` weeks (mostly free, so most requests are real bookings).
5. Checks afterwards, in SQL: live sessions overlapping for one mentor or one mentee
   (must be 0) and mentor-weeks over capacity in the mentor's zone (must be 0).

Prints throughput, p50/p95/p99, the status codes and the load average of every phase.
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
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parent.parent

from app.config import Settings  # noqa: E402
from app.core.auth import mint_token  # noqa: E402
from bench import _wrk as wrk  # noqa: E402
from bench._server import spawn, stop, wait_healthy  # noqa: E402
from bench._wrk import Request  # noqa: E402

ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "UTC"]
JWT_SECRET = "bench-secret-0123456789abcdef0123456789"

# (statement, its parameters: m = mentors, n = mentees, z = zones)
SEED_SQL = [
    # Deterministic ids, md5('mentor<i>')::uuid, so assignments need no lookup.
    ("""
    insert into users (id, email, name, role, timezone, is_mentor, mentor_capacity_weekly,
                       mentor_max_mentees, mentor_specialties, mentor_availability)
    select md5('mentor' || i)::uuid, 'mentor' || i || '@bench.test', 'Mentor ' || i, 'mentor',
           z.zone, true, 10, 20, array['python', 'career'],
           jsonb_build_object('timezone', z.zone, 'windows',
             (select jsonb_agg(jsonb_build_object('weekday', d, 'start', '08:00',
                                                  'end', '20:00'))
                from generate_series(0, 4) d))
      from generate_series(1, $1::int) i,
           lateral (select ($2::text[])[1 + i % cardinality($2::text[])] as zone) z
    """, "mz"),
    ("""
    insert into users (id, email, name, role, timezone, tier, interests)
    select md5('mentee' || j)::uuid, 'mentee' || j || '@bench.test', 'Mentee ' || j, 'mentee',
           'UTC', (1 + j % 7)::text, array['python']
      from generate_series(1, $1::int) j
    """, "n"),
    ("""
    insert into assignments (id, mentee_id, mentor_id, source)
    select gen_random_uuid(), md5('mentee' || j)::uuid,
           md5('mentor' || (1 + (j - 1) % $1::int))::uuid, 'auto'
      from generate_series(1, $2::int) j
    """, "mn"),
    # History: 40 weekly completed sessions per mentor, each with one of its mentees.
    ("""
    insert into sessions (id, mentor_id, mentee_id, starts_at, ends_at, duration_minutes,
                          status, meeting_url)
    select gen_random_uuid(), md5('mentor' || i)::uuid,
           md5('mentee' || (i + $1::int * (k % ($2::int / $1::int))))::uuid,
           date_trunc('hour', now()) - make_interval(weeks => k),
           date_trunc('hour', now()) - make_interval(weeks => k) + interval '60 minutes',
           60, 'completed', 'https://meet.jit.si/mentorship-history'
      from generate_series(1, $1::int) i, generate_series(1, 40) k
    """, "mn"),
]

# Live sessions overlapping another live session of the same mentor or the same mentee.
_OVERLAP = """(select count(*) from sessions a join sessions b
       on a.{who} = b.{who} and a.id < b.id
      and a.status <> 'cancelled' and b.status <> 'cancelled'
      and tstzrange(a.starts_at, a.ends_at, '[)') && tstzrange(b.starts_at, b.ends_at, '[)'))"""
OVERLAPS_SQL = ("select " + _OVERLAP.format(who="mentor_id") + " + "
                + _OVERLAP.format(who="mentee_id"))
OVER_CAPACITY_SQL = """
    select count(*) from (
      select s.mentor_id, date_trunc('week', s.starts_at at time zone
               (u.mentor_availability->>'timezone')) as week, count(*) as n,
             min(u.mentor_capacity_weekly) as capacity
        from sessions s join users u on u.id = s.mentor_id
       where s.status <> 'cancelled'
       group by 1, 2) w
     where w.n > w.capacity
"""


@dataclass
class Mentor:
    id: uuid.UUID
    zone: ZoneInfo
    mentees: list[uuid.UUID]
    token: str = ""


@dataclass
class Phase:
    name: str
    clients: int
    outcomes: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    server_cpu: float = 0.0  # seconds of uvicorn CPU during the phase
    client_cpu: float = 0.0  # seconds of this process's CPU (the load generator)

    result: dict = field(default_factory=dict)  # wrk's figures

    def report(self) -> str:
        r = self.result
        total = r["requests"]
        return (
            f"[{self.name}] {self.clients} clients (wrk), {self.elapsed:.1f} s: {total} "
            f"requests, {r['rps']:.0f} req/s, {self.outcomes.get('201', 0) / self.elapsed:.0f} "
            f"bookings/s; latency ms p50 {r['p50_ms']:.1f} p95 {r['p95_ms']:.1f} "
            f"p99 {r['p99_ms']:.1f} max {r['max_ms']:.1f}; "
            f"status codes {dict(self.outcomes.most_common())}; "
            f"server CPU {self.server_cpu / max(total, 1) * 1000:.1f} ms/request "
            f"({self.server_cpu / self.elapsed:.0%} of a core; load generator "
            f"{self.client_cpu / self.elapsed:.0%})"
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def migrate(database_url: str) -> None:
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT,
                   env={**os.environ, "DATABASE_URL": database_url}, check=True,
                   capture_output=True)


def start_server(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """uvicorn in its own process, logs (JSON access lines) to `log_path`."""
    with log_path.open("w") as log:
        return spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
             "--timeout-keep-alive", "75",  # as behind a load balancer
             "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=log)


async def setup_database(server_url: str, name: str, mentors: int, mentees: int) -> str:
    admin = await asyncpg.connect(plain(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = server_url.rsplit("/", 1)[0] + f"/{name}"
    migrate(database_url)
    started = time.perf_counter()
    connection = await asyncpg.connect(plain(database_url))
    try:
        async with connection.transaction():
            values = {"m": mentors, "n": mentees, "z": ZONES}
            for sql, params in SEED_SQL:
                await connection.execute(sql, *(values[p] for p in params))
        await connection.execute("analyze")
        counts = await connection.fetchrow(
            "select (select count(*) from users where role = 'mentor') as mentors,"
            " (select count(*) from users where role = 'mentee') as mentees,"
            " (select count(*) from assignments) as assignments,"
            " (select count(*) from sessions) as sessions")
    finally:
        await connection.close()
    print(f"seeded {dict(counts)} in {time.perf_counter() - started:.1f} s")
    return database_url


async def load_mentors(database_url: str, count: int, settings: Settings) -> list[Mentor]:
    connection = await asyncpg.connect(plain(database_url))
    try:
        rows = await connection.fetch(
            "select u.id, u.mentor_availability->>'timezone' as zone, "
            "array_agg(a.mentee_id) as mentees from users u "
            "join assignments a on a.mentor_id = u.id and a.ended_at is null "
            "where u.role = 'mentor' group by u.id order by u.email limit $1", count)
    finally:
        await connection.close()
    return [Mentor(r["id"], ZoneInfo(r["zone"]), list(r["mentees"]),
                   mint_token(r["id"], "mentor", settings)) for r in rows]


def random_slot(mentor: Mentor, weeks: int, rng: random.Random) -> datetime:
    """A 60-minute slot on the hour inside the mentor's Mon-Fri 08:00-20:00 windows."""
    today = datetime.now(mentor.zone).date()
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=1)
    day = monday + timedelta(weeks=rng.randrange(weeks), days=rng.randrange(5))
    local = datetime(day.year, day.month, day.day, 8 + rng.randrange(12), tzinfo=mentor.zone)
    return local.astimezone(UTC)


def run_phase(base_url: str, phase: Phase, mentors: list[Mentor], duration: float,
              weeks: int) -> None:
    """wrk (C, 2 threads) with `phase.clients` connections for `duration` s over a list of
    random bookings built beforehand, so the load generator takes little of the CPU."""
    rng = random.Random(phase.clients)
    requests = []
    for _ in range(max(2000, int(duration * 400))):
        mentor = rng.choice(mentors)
        body = {"mentee_id": str(rng.choice(mentor.mentees)),
                "starts_at": random_slot(mentor, weeks, rng).isoformat(),
                "duration_minutes": 60, "agenda": "bench"}
        requests.append(Request("/api/v1/mentor/sessions", mentor.token, "POST",
                                json.dumps(body)))
    result = wrk.run(base_url, requests, seconds=duration, clients=phase.clients)
    phase.result = result
    phase.elapsed = result["seconds"]
    phase.outcomes.update({str(k): v for k, v in result["statuses"].items()})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--total-mentors", type=int, default=1000)
    parser.add_argument("--total-mentees", type=int, default=20000)
    parser.add_argument("--mentors", type=int, default=100, help="mentors booked per phase")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--low-clients", type=int, default=8)
    parser.add_argument("--low-duration", type=float, default=20.0)
    parser.add_argument("--weeks", type=int, default=2,
                        help="weeks the load phase's slots are drawn from (contended)")
    parser.add_argument("--low-weeks", type=int, default=8,
                        help="weeks the latency phase's slots are drawn from (mostly free)")
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--max-overflow", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped

    name = f"mentorship_bench_{uuid.uuid4().hex[:8]}"
    database_url = await setup_database(args.server_url, name, args.total_mentors,
                                        args.total_mentees)
    settings = Settings(database_url=database_url, jwt_secret=JWT_SECRET)
    mentors = await load_mentors(database_url, 2 * args.mentors, settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": args.redis_url,
           "REDIS_PREFIX": f"{name}:", "JWT_SECRET": JWT_SECRET, "ENVIRONMENT": "production",
           "DB_POOL_SIZE": str(args.pool_size), "DB_MAX_OVERFLOW": str(args.max_overflow)}
    process = start_server(port, env, Path(f"/tmp/{name}-uvicorn.log"))
    try:
        await wait_healthy(base_url, process, within=30)
        print(f"uvicorn pid {process.pid} on {base_url}; pool {args.pool_size}"
              f"+{args.max_overflow}; slots from {args.weeks} / {args.low_weeks} weeks")
        for phase, group, duration, weeks in (
                (Phase("load", args.clients), mentors[: args.mentors], args.duration,
                 args.weeks),
                (Phase("latency", args.low_clients), mentors[args.mentors:], args.low_duration,
                 args.low_weeks)):
            cpu, own = cpu_seconds(process.pid), os.times()
            await asyncio.to_thread(run_phase, base_url, phase, group, duration, weeks)
            phase.server_cpu = cpu_seconds(process.pid) - cpu
            now = os.times()
            phase.client_cpu = (now.children_user + now.children_system
                                - own.children_user - own.children_system)
            print(phase.report(), flush=True)
            print(f"  load average now: {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        stop(process, timeout=30)

    connection = await asyncpg.connect(plain(database_url))
    try:
        overlaps = await connection.fetchval(OVERLAPS_SQL)
        over_capacity = await connection.fetchval(OVER_CAPACITY_SQL)
        booked = await connection.fetchval(
            "select count(*) from sessions where agenda = 'bench'")
    finally:
        await connection.close()
    print(f"after: {booked} sessions booked; double bookings (SQL check): {overlaps}; "
          f"mentor-weeks over capacity: {over_capacity}")
    if not args.keep:
        admin = await asyncpg.connect(plain(args.server_url))
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    if overlaps or over_capacity:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
