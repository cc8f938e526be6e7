"""Time `mentorship seed --mentors 1000 --mentees 20000` into an empty database.

    python -m bench.seed_bench [--server-url postgresql://postgres@127.0.0.1:5432/postgres]
                                         [--mentors 1000 --mentees 20000] [--keep]

Creates a fresh database on the server, migrates it, runs the real command in a subprocess
(wall time includes interpreter start-up and imports, as a user would see it), prints the
command's own breakdown, checks the invariants on the loaded data, and drops the database
(unless --keep: then it prints its URL, handy for other benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent

from app.devtools.migrate import upgrade  # noqa: E402

CHECKS = {
    "weeks over a mentor's weekly capacity": """
        select count(*) from (
          select s.mentor_id, u.mentor_capacity_weekly,
                 date_trunc('week', s.starts_at at time zone u.timezone), count(*) as booked
            from sessions s join users u on u.id = s.mentor_id
           where s.status <> 'cancelled' group by 1, 2, 3) w
         where booked > mentor_capacity_weekly""",
    "mentors over their maximum of mentees": """
        select count(*) from users u where u.is_mentor and (select count(*) from assignments a
          where a.mentor_id = u.id and a.ended_at is null) > u.mentor_max_mentees""",
    "sessions outside the mentor's availability": """
        select count(*) from sessions s join users u on u.id = s.mentor_id
         where not exists (select 1 from jsonb_array_elements(u.mentor_availability->'windows') w
           where (w->>'weekday')::int
                 = extract(isodow from s.starts_at at time zone u.timezone)::int - 1
             and (s.starts_at at time zone u.timezone)::time >= (w->>'start')::time
             and (s.ends_at at time zone u.timezone)::time <= (w->>'end')::time)""",
}


def plain(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.set(database=database).render_as_string(hide_password=False) if database \
        else parsed.render_as_string(hide_password=False)


async def admin(server_url: str, sql: str) -> None:
    connection = await asyncpg.connect(plain(server_url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def run_checks(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(plain(database_url))
    try:
        return {name: await connection.fetchval(sql) for name, sql in CHECKS.items()}
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped

    name = f"bench_seed_{uuid.uuid4().hex[:8]}"
    database_url = make_url(args.server_url).set(
        drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    asyncio.run(admin(args.server_url, f'CREATE DATABASE "{name}"'))
    try:
        upgrade(database_url, configure_logger=False)
        command = [sys.executable, "-m", "app.devtools.cli", "seed", "--mentors", str(args.mentors),
                   "--mentees", str(args.mentees), "--seed", str(args.seed)]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url},
                                capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        print(result.stdout, end="")
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return 1
        print(f"mentorship seed --mentors {args.mentors} --mentees {args.mentees}: "
              f"{wall:.1f} s wall (target < 60 s)")
        for check, violations in asyncio.run(run_checks(database_url)).items():
            print(f"  {check}: {violations}")
        if args.keep:
            print(f"kept: DATABASE_URL={database_url}")
    finally:
        if not args.keep:
            asyncio.run(admin(args.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
