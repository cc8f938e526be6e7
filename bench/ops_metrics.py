"""Cost of the programme metrics refresh and of a /metrics scrape at programme scale.

Builds its own database (1,000 mentors, 20,000 mentees, ~120K sessions, ~84K feedback,
200K work items, 200K outbox events of which 5K unpublished), then times:
- `compute_programme_metrics` (what the refresh job runs every minute), as the workers' role;
- one `/metrics` scrape through the app (ASGI, no network). Since the deployment-wide
  series moved to the exporting worker (app/services/ops/exporter.py), the API's scrape
  reads no database; the exporter's refresh (every 15 s) reads the outbox backlog and the
  five stored metrics through the SECURITY DEFINER functions, the reads this bench timed
  inside the scrape before.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
    TEST_REDIS_URL=redis://127.0.0.1:6379/0 python -m bench.ops_metrics
    python -m bench.ops_metrics --mentors 5 --refreshes 2 --scrapes 5   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from app.config import get_settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services.ops.metrics import (  # noqa: E402
    compute_programme_metrics,
    refresh_programme_metrics,
)
from tests.support.harness import ServerHarness, _plain_dsn  # noqa: E402

MENTORS, PER_MENTOR, WEEKS = 1000, 20, 15  # --mentors
NOW = datetime.now(UTC).replace(microsecond=0)
rng = random.Random(7)


def uid() -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


async def populate(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        users, assignments, sessions, feedback, items, outbox = [], [], [], [], [], []
        for m in range(MENTORS):
            mentor = uid()
            zone = rng.choice(["UTC", "Europe/London", "America/New_York", "Asia/Tokyo"])
            users.append((mentor, f"mentor{m}@bench.test", f"Mentor {m}", "mentor", zone,
                          True, 10, 20))
            mentees = [uid() for _ in range(PER_MENTOR)]
            for j, mentee in enumerate(mentees):
                users.append((mentee, f"mentee{m}-{j}@bench.test", f"Mentee {m}-{j}", "mentee",
                              "UTC", False, 10, 20))
                assignments.append((uid(), mentee, mentor, NOW - timedelta(days=120)))
            monday = (NOW - timedelta(days=NOW.weekday())).replace(hour=0, minute=0, second=0)
            for w in range(-WEEKS + 2, 2):  # 13 past weeks, this one, the next
                for k in range(8):
                    starts = monday + timedelta(weeks=w, days=k // 2, hours=10 + 4 * (k % 2))
                    mentee = mentees[(w * 8 + k) % PER_MENTOR]
                    if starts > NOW:
                        status = "scheduled"
                    else:
                        status = rng.choices(["completed", "no_show", "cancelled"],
                                             [90, 7, 3])[0]
                    session_id = uid()
                    sessions.append((session_id, mentor, mentee, starts,
                                     starts + timedelta(minutes=60), 60, status))
                    if status == "completed" and rng.random() < 0.7:
                        feedback.append((uid(), session_id, mentor, mentee,
                                         rng.choices([3, 4, 5], [1, 4, 5])[0],
                                         starts + timedelta(hours=2)))
            for i in range(200):
                created = NOW - timedelta(hours=rng.uniform(1, 60 * 24))
                done = rng.random() < 0.6
                due = created + timedelta(hours=48)
                items.append((uid(), "mission_review", "high", "done" if done else "open",
                              rng.choice(mentees), f"bench:{m}:{i}", "Review", created, due,
                              created + timedelta(hours=rng.uniform(0.5, 60)) if done else None))
            for i in range(200):
                created = NOW - timedelta(minutes=rng.uniform(1, 60 * 24 * 30))
                published = None if (m * 200 + i) % 40 == 0 else created + timedelta(seconds=2)
                outbox.append((uid(), "session.scheduled", created, "{}", "normal", created,
                               published))
        await conn.copy_records_to_table(
            "users", records=users, columns=["id", "email", "name", "role", "timezone",
                                             "is_mentor", "mentor_capacity_weekly",
                                             "mentor_max_mentees"])
        await conn.copy_records_to_table("assignments", records=assignments,
                                         columns=["id", "mentee_id", "mentor_id", "started_at"])
        await conn.copy_records_to_table(
            "sessions", records=sessions, columns=["id", "mentor_id", "mentee_id", "starts_at",
                                                   "ends_at", "duration_minutes", "status"])
        await conn.copy_records_to_table(
            "session_feedback", records=feedback,
            columns=["id", "session_id", "mentor_id", "mentee_id", "rating", "created_at"])
        await conn.copy_records_to_table(
            "work_items", records=items,
            columns=["id", "kind", "priority", "status", "mentee_id", "source_key", "title",
                     "created_at", "due_at", "completed_at"])
        await conn.copy_records_to_table(
            "outbox_events", records=outbox,
            columns=["id", "type", "occurred_at", "data", "refresh_priority", "created_at",
                     "published_at"])
        await conn.execute("ANALYZE")
        return {"users": len(users), "sessions": len(sessions), "feedback": len(feedback),
                "work_items": len(items), "outbox": len(outbox),
                "outbox_unpublished": sum(1 for row in outbox if row[-1] is None)}
    finally:
        await conn.close()


def timings(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
            f"n={len(ordered)}")


async def run(harness: ServerHarness, args: argparse.Namespace) -> None:
    os.environ.update(harness.environment())
    get_settings.cache_clear()
    settings = get_settings()
    if True:
        started = time.perf_counter()
        counts = await populate(_plain_dsn(settings.database_url))
        print(f"data: {counts} in {time.perf_counter() - started:.1f} s")

        system = Database.connect(settings.worker_db_url, settings)
        try:
            refresh = []
            for _ in range(args.refreshes):
                t0 = time.perf_counter()
                async with system.transaction(None) as session:
                    await compute_programme_metrics(session, now=datetime.now(UTC))
                refresh.append(time.perf_counter() - t0)
            async with system.transaction(None) as session:
                values = await refresh_programme_metrics(session, now=datetime.now(UTC))
            print("metrics:", {v.name: round(v.value, 3) if v.value is not None else None
                               for v in values})
            print(f"compute_programme_metrics (5 queries): {timings(refresh)}")
        finally:
            await system.dispose()

        application = create_app(settings)
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
                for _ in range(20):  # warm up (connections, imports)
                    await http.get("/metrics")
                scrapes = []
                for _ in range(args.scrapes):
                    t0 = time.perf_counter()
                    response = await http.get("/metrics")
                    scrapes.append(time.perf_counter() - t0)
                    assert response.status_code == 200
                print(f"/metrics scrape ({len(response.content)} bytes): {timings(scrapes)}")


def main(argv: list[str] | None = None) -> None:
    global MENTORS  # set from the arguments below
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentors", type=int, default=MENTORS,
                        help=f"{PER_MENTOR} mentees, 120 sessions and 400 rows each")
    parser.add_argument("--refreshes", type=int, default=10, help="timed metric refreshes")
    parser.add_argument("--scrapes", type=int, default=200, help="timed /metrics scrapes")
    args = parser.parse_args(argv)
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: the database is dropped
    MENTORS = args.mentors
    servers = ServerHarness()  # a fresh database, migrated; dropped at the end
    servers.create()
    try:
        asyncio.run(run(servers, args))
    finally:
        servers.drop()


if __name__ == "__main__":
    main()
