"""A user's data export (`GET /api/v1/admin/users/{user_id}/export`) at 1K x 20K.

    .venv/bin/python -m bench.export_bench [--mentors 1000] [--mentees 20000]
                                           [--proposal-runs 10] [--repeat 5]

Creates a fresh migrated database (the tests' harness: TEST_DATABASE_URL or the embedded
server) and loads the programme `mentorship seed --mentors 1000 --mentees 20000` loads (COPY;
its audit trail too: the triggers write one entry per row), plus the proposals of
`--proposal-runs` dry runs (16,000 each at full size, COPY), then asks the real app
(in-process ASGI, the admin's token, API role under RLS) for the export of
- the mentor with the most mentees (all their assignments, sessions, reviews, feedback),
- the mentee with the most sessions,
`--repeat` times each, and prints each time, the document's size and its row counts.
Goal: under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

import httpx
from asgi_lifespan import LifespanManager

from app.core.auth import mint_token
from app.devtools.seed import seed
from app.main import create_app
from bench._database import BenchDatabase

PICKS = {
    "mentor with the most mentees": """
        select u.id, count(*) as n from users u join assignments a on a.mentor_id = u.id
         where u.is_mentor group by u.id order by n desc, u.id limit 1""",
    "mentee with the most sessions": """
        select u.id, count(*) as n from users u join sessions s on s.mentee_id = u.id
         where u.role = 'mentee' group by u.id order by n desc, u.id limit 1""",
}


async def _proposals(bench: BenchDatabase, runs: int) -> int:
    """Dry runs' proposals (as the matcher writes them) for the export to sift through."""
    connection = await bench.connect()
    try:
        mentees = [r[0] for r in await connection.fetch(
            "select id from users where role = 'mentee' order by id")]
        mentors = [r[0] for r in await connection.fetch(
            "select id from users where is_mentor order by id")]
        rng = random.Random(3)
        size = min(len(mentees), 16 * len(mentors))
        total = 0
        for i in range(runs):
            run_id = uuid.uuid4()
            await connection.execute(
                "insert into matching_runs (id, job_id, status, dry_run) "
                "values ($1, $2, 'done', true)", run_id, f"bench-export-{i}")
            rows = [(run_id, e, rng.choice(mentors), 0.8, 0.3, 0.2, 0.1, 0.1, 0.1,
                     ["shared specialties: python", "time zones 2 h apart"])
                    for e in rng.sample(mentees, size)]
            await connection.copy_records_to_table(
                "matching_proposals", records=rows,
                columns=["run_id", "mentee_id", "mentor_id", "fit", "specialty", "timezone",
                         "load", "language", "preference", "reasons"])
            total += len(rows)
        await connection.execute("analyze matching_proposals")
        return total
    finally:
        await connection.close()


async def run(bench: BenchDatabase, args: argparse.Namespace) -> None:
    settings = bench.settings
    started = time.perf_counter()
    result = await seed(settings, mentors=args.mentors, mentees=args.mentees)
    proposals = await _proposals(bench, args.proposal_runs)
    audit = await bench.fetchval("select count(*) from audit_log")
    print(f"seeded {sum(result.counts.values()):,} rows, {proposals:,} proposals of "
          f"{args.proposal_runs} dry runs, {audit:,} audit entries, in "
          f"{time.perf_counter() - started:.0f} s")
    connection = await bench.connect()
    try:
        admin = await connection.fetchval("select id from users where role = 'admin' limit 1")
        picks = {label: await connection.fetchrow(sql) for label, sql in PICKS.items()}
    finally:
        await connection.close()
    headers = {"Authorization": f"Bearer {mint_token(admin, 'admin', settings)}"}
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for label, pick in picks.items():
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    response = await http.get(f"/api/v1/admin/users/{pick['id']}/export",
                                              headers=headers, timeout=60)
                    times.append(time.perf_counter() - t)
                    assert response.status_code == 200, response.text
                data = response.json()["data"]
                counts = ", ".join(f"{k} {len(v)}" for k, v in data.items() if v)
                print(f"\n{label} ({pick['n']}): median {statistics.median(times) * 1000:.0f} ms,"
                      f" first {times[0] * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms, "
                      f"{len(response.content) / 1e6:.1f} MB; load average "
                      f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
                print(f"  {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--proposal-runs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: the database is dropped
    with BenchDatabase() as bench:
        asyncio.run(run(bench, args))


if __name__ == "__main__":
    main()
