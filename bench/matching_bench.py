"""Auto-matcher at full size: 20K mentees x 1K mentors, from the database and back.

    .venv/bin/python -m bench.matching_bench [--mentees 20000] [--mentors 1000]
                                             [--assigned 4000] [--top-k 30] [--plain]

Seeds a fresh database with COPY (mentors with 1-4 specialties out of 40, a time zone and
0-3 languages; mentees with 1-4 interests and 0-2 languages, a third of the waiting ones
with preferences: preferred specialties, mentors, a time-zone limit for 30 % of those;
`--assigned` mentees already have a mentor, the rest wait), then:
0. a dry run end to end as the worker runs it (proposals with their components and reasons
   written), then its publish as the API runs it (RLS as a director: locks, re-checks,
   16,000 assignments + 16,000 `assignment.created` events, commit);
1. the matcher end to end as the worker runs it (`execute_matching_run`: the run row, the
   lock, load, candidates, solve, bulk write of assignments + outbox events, commit),
   with its phases timed (a second identical run on a reset database);
2. the greedy baseline on the same problem (candidates + greedy), time and total fit;
3. quality of top-K against the exact dense model on a 5K x 250 sub-instance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import text

from app.core.auth import Principal
from app.core.db import Database
from app.services.matching.engine import auto_match, load_problem
from app.services.matching.execution import execute_matching_run
from app.services.matching.fit import FitModel
from app.services.matching.publish import publish_run
from app.services.matching.solver import solve_greedy, solve_optimal
from app.services.matching.weights import Weights
from app.services.matching.writes import MATCHER_LOCK_KEY
from bench._database import BenchDatabase

TAGS = ["python", "go", "rust", "java", "javascript", "typescript", "react", "vue", "sql",
        "data", "ml", "ai", "statistics", "devops", "cloud", "aws", "security", "mobile",
        "ios", "android", "design", "ux", "product", "career", "interviews", "leadership",
        "writing", "testing", "architecture", "databases", "networking", "linux", "c",
        "cpp", "embedded", "games", "finance", "startups", "open-source", "english"]
LANGUAGES = ["en", "es", "fr", "de", "pt", "hi", "zh", "ja", "ar", "sw"]
LANGUAGE_WEIGHTS = [10, 4, 3, 2, 2, 2, 2, 1, 1, 1]
ZONES = ["Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York",
         "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata",
         "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "Africa/Lagos", "UTC"]


async def seed(db: BenchDatabase, *, mentees: int, mentors: int, assigned: int,
               rich: bool = True) -> None:
    rng = random.Random(42)
    # Tags are skewed (some much more popular), as real interests are.
    weights = [1 / (i + 1) ** 0.7 for i in range(len(TAGS))]

    def tags() -> list[str]:
        return sorted(set(rng.choices(TAGS, weights, k=rng.randint(1, 4))))

    def languages(k: int) -> list[str]:
        return sorted(set(rng.choices(LANGUAGES, LANGUAGE_WEIGHTS, k=k)))

    mentor_rows, mentee_rows = [], []
    for i in range(mentors):
        zone = rng.choice(ZONES)
        mentor_rows.append((uuid.uuid4(), f"mentor{i}@bench.test", f"Mentor {i}", "mentor", zone,
                            True, 10, 20, tags(),
                            json.dumps({"timezone": zone, "windows": []}), [],
                            languages(rng.randint(0, 3)) if rich else []))
    for i in range(mentees):
        mentee_rows.append((uuid.uuid4(), f"mentee{i}@bench.test", f"Mentee {i}", "mentee",
                            rng.choice(ZONES), False, 10, 20, [], json.dumps({"timezone": "UTC",
                            "windows": []}), tags(),
                            languages(rng.randint(0, 2)) if rich else []))
    columns = ("id", "email", "name", "role", "timezone", "is_mentor", "mentor_capacity_weekly",
               "mentor_max_mentees", "mentor_specialties", "mentor_availability", "interests",
               "languages")
    await db.copy("users", columns, mentor_rows + mentee_rows)
    if rich:  # preferences: a third state some, a tenth a time-zone limit
        preference_rows = []
        for mentee in mentee_rows[assigned:]:
            if rng.random() < 0.33:
                limit = rng.choice([3.0, 5.0, 8.0]) if rng.random() < 0.3 else None
                preferred = [mentor_rows[rng.randrange(mentors)][0]
                             for _ in range(rng.randint(0, 2))]
                preference_rows.append((mentee[0], tags() if rng.random() < 0.5 else [],
                                        [], limit, preferred))
        await db.copy("mentee_preferences", ("mentee_id", "specialties", "languages",
                                             "max_timezone_offset_hours",
                                             "preferred_mentor_ids"), preference_rows)
    load = [0] * mentors
    assignment_rows = []
    for mentee in mentee_rows[:assigned]:
        m = rng.choice([j for j in rng.sample(range(mentors), 5) if load[j] < 20] or [0])
        load[m] += 1
        assignment_rows.append((uuid.uuid4(), mentee[0], mentor_rows[m][0], "manual"))
    await db.copy("assignments", ("id", "mentee_id", "mentor_id", "source"), assignment_rows)
    await db.sql("analyze")


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) a local Postgres backend has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backends_cpu(db: BenchDatabase) -> dict[int, float]:
    """CPU seconds used so far by each Postgres backend connected to the bench database."""
    pids = await db.fetchval("select array_agg(pid) from pg_stat_activity "
                             "where datname = current_database() and pid <> pg_backend_pid()")
    out = {}
    for pid in pids or []:
        try:
            out[pid] = backend_cpu(pid)
        except (FileNotFoundError, ProcessLookupError):  # gone meanwhile
            pass
    return out


class CpuMeter:
    """Wall time, this process's CPU and the bench database's backends' CPU over a step: on
    a shared machine the CPU figures say what the step costs, the wall time what it got."""

    async def start(self, db: BenchDatabase) -> None:
        self.db, self.wall, self.python = db, time.perf_counter(), time.process_time()
        self.backends = await backends_cpu(db)

    async def stop(self) -> str:
        wall, python = time.perf_counter() - self.wall, time.process_time() - self.python
        after = await backends_cpu(self.db)
        postgres = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in after.items())
        return (f"wall {wall * 1000:.0f} ms; CPU python {python * 1000:.0f} ms + postgres "
                f"{postgres * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}")


async def reset(db: BenchDatabase) -> None:
    await db.sql("delete from assignments where source = 'auto'")
    await db.sql("delete from outbox_events")
    await db.sql("delete from matching_runs")
    await db.sql("vacuum analyze assignments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentees", type=int, default=20_000)
    parser.add_argument("--mentors", type=int, default=1_000)
    parser.add_argument("--assigned", type=int, default=4_000)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--plain", action="store_true",
                        help="no languages or preferences in the data (the v1 bench)")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    with BenchDatabase() as bench:
        asyncio.run(run(bench, args))


async def request_dry_run(db: BenchDatabase, director: uuid.UUID, settings) -> str:
    """A queued dry run as `POST .../run {"dry_run": true}` records it."""
    job_id = f"bench-dry-{uuid.uuid4()}"
    weights = json.dumps(Weights.from_settings(settings).normalised().as_dict())
    await db.sql("insert into matching_runs (id, job_id, status, dry_run, weights, requested_by) "
                 "values ($1, $2, 'queued', true, $3::jsonb, $4)",
                 uuid.uuid4(), job_id, weights, director)
    return job_id


async def run(bench: BenchDatabase, args: argparse.Namespace) -> None:
    if True:
        settings = bench.settings
        if args.top_k:
            settings = settings.model_copy(update={"match_top_k": args.top_k})
        started = time.perf_counter()
        await seed(bench, mentees=args.mentees, mentors=args.mentors, assigned=args.assigned,
                   rich=not args.plain)
        director = uuid.uuid4()
        await bench.sql("insert into users (id, email, name, role) values "
                        "($1, 'director@bench.test', 'Director', 'director')", director)
        print(f"seeded {args.mentees} mentees ({args.assigned} assigned) and {args.mentors} "
              f"mentors in {time.perf_counter() - started:.1f} s; top_k={settings.match_top_k}; "
              f"{'plain' if args.plain else 'with languages and preferences'}")
        worker_db = Database.connect(settings.worker_db_url, settings)
        app_db = Database.connect(settings.api_db_url, settings)
        try:
            # 0. A dry run, then its publish as the API runs it (RLS as the director).
            job = await request_dry_run(bench, director, settings)
            meter = CpuMeter()
            async with worker_db.transaction(None) as session:  # the pool's connection, open
                await session.execute(text("select 1"))
            await meter.start(bench)
            started = time.perf_counter()
            dry = await execute_matching_run(worker_db, settings=settings, job_id=job)
            dry_s = time.perf_counter() - started
            dry_cpu = await meter.stop()
            print(f"\n[dry run] execute_matching_run end to end: {dry_s * 1000:.0f} ms "
                  f"(solver {dry['solver_ms']} ms): {dry['assigned']} proposals, "
                  f"{dry['unplaced']} unplaced, total fit {dry['total_fit']:.3f}")
            print(f"  {dry_cpu}")
            principal = Principal(user_id=director, role="director")
            async with app_db.transaction(None) as session:
                await session.execute(text("select 1"))
            await meter.start(bench)
            started = time.perf_counter()
            async with app_db.transaction(principal) as session:
                published = await publish_run(session, principal=principal, settings=settings,
                                              job_id=job, exclude_mentee_ids=[])
            publish_s = time.perf_counter() - started
            publish_cpu = await meter.stop()
            events = await bench.fetchval("select count(*) from outbox_events "
                                          "where type = 'assignment.created'")
            print(f"[publish] {published['published']} assignments + {events} events, "
                  f"{len(published['skipped'])} skipped, in {publish_s * 1000:.0f} ms "
                  f"(committed); total fit {published['total_fit']:.3f}")
            audit = await bench.fetchval(
                "select count(*) from audit_log where action = 'assignments.insert' "
                "and changes #>> '{source,after}' = 'auto'")
            print(f"  {publish_cpu}; {audit} assignment audit entries")
            await reset(bench)

            # 1a. The worker's path, end to end.
            started = time.perf_counter()
            summary = await execute_matching_run(worker_db, settings=settings,
                                                  job_id=f"bench-{uuid.uuid4()}")
            end_to_end = time.perf_counter() - started
            print(f"\n[committed run] execute_matching_run end to end: {end_to_end * 1000:.0f} ms "
                  f"(run row says duration {summary['duration_ms']} ms, "
                  f"solver {summary['solver_ms']} ms)")
            print(f"  assigned {summary['assigned']}, unplaced {summary['unplaced']}, "
                  f"total fit {summary['total_fit']:.3f} (dry run {dry['total_fit']:.3f}, "
                  f"published {published['total_fit']:.3f})")

            # 1b. Same run again on the reset data, phase by phase (same code path), with
            # the CPU time it used: this process plus its Postgres backend (same machine).
            # On a machine shared with other work, wall time minus CPU time is waiting.
            await reset(bench)
            started = time.perf_counter()
            cpu_started = time.process_time()
            async with worker_db.transaction(None) as session:
                backend = await session.scalar(text("select pg_backend_pid()"))
                backend_started = backend_cpu(backend)
                await session.execute(text("select pg_advisory_xact_lock(:k)"),
                                      {"k": MATCHER_LOCK_KEY})
                outcome = await auto_match(session, settings=settings, at=datetime.now(UTC))
                before_commit = time.perf_counter()
            total = time.perf_counter() - started
            python_cpu = time.process_time() - cpu_started
            postgres_cpu = backend_cpu(backend) - backend_started
            print(f"  phases: load {outcome.load_ms} ms, candidates {outcome.candidates_ms} ms, "
                  f"solve {outcome.solver_ms} ms (hub-routed mentees: {outcome.hub_mentees}), "
                  f"write {outcome.write_ms} ms, commit "
                  f"{(time.perf_counter() - before_commit) * 1000:.0f} ms; total "
                  f"{total * 1000:.0f} ms")
            print(f"  CPU used: python {python_cpu * 1000:.0f} ms + postgres backend "
                  f"{postgres_cpu * 1000:.0f} ms = {(python_cpu + postgres_cpu) * 1000:.0f} ms "
                  f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

            # 2. Greedy baseline on the same problem (as loaded before the run).
            await reset(bench)
            async with worker_db.transaction(None) as session:
                problem = await load_problem(session, at=datetime.now(UTC))
            model = FitModel(problem, Weights.from_settings(settings),
                             settings.match_preference_boost)
            optimal = solve_optimal(model, top_k=settings.match_top_k,
                                    block_rows=settings.match_block_rows)
            greedy = solve_greedy(model, top_k=settings.match_top_k,
                                  block_rows=settings.match_block_rows)
            print(f"\n[in memory, same problem] optimal: placed {optimal.placed}, total fit "
                  f"{optimal.total_fit:.3f}, candidates {optimal.candidates_ms:.0f} ms + solve "
                  f"{optimal.solver_ms:.0f} ms ({optimal.arcs} candidate arcs)")
            print(f"[in memory, same problem] greedy:  placed {greedy.placed}, total fit "
                  f"{greedy.total_fit:.3f}, candidates {greedy.candidates_ms:.0f} ms + greedy "
                  f"{greedy.solver_ms:.0f} ms")
            print(f"  optimal - greedy = {optimal.total_fit - greedy.total_fit:+.3f} "
                  f"({(optimal.total_fit / greedy.total_fit - 1) * 100:+.2f} %)")

            # 3. Top-K against the exact (dense) model on a sub-instance.
            rng = np.random.default_rng(0)
            m_all, n_all = len(problem.mentor_ids), len(problem.mentee_ids)
            mentor_pick = np.sort(rng.choice(m_all, min(250, m_all), replace=False))
            mentee_pick = np.sort(rng.choice(n_all, min(4_000, n_all), replace=False))
            position = {int(m): i for i, m in enumerate(mentor_pick)}
            sub = type(problem)(
                mentee_ids=[problem.mentee_ids[i] for i in mentee_pick],
                mentee_tags=[problem.mentee_tags[i] for i in mentee_pick],
                mentee_offsets=problem.mentee_offsets[mentee_pick],
                mentor_ids=[problem.mentor_ids[i] for i in mentor_pick],
                mentor_tags=[problem.mentor_tags[i] for i in mentor_pick],
                mentor_offsets=problem.mentor_offsets[mentor_pick],
                mentor_active=problem.mentor_active[mentor_pick],
                mentor_max=problem.mentor_max[mentor_pick],
                mentee_languages=[problem.mentee_languages[i] for i in mentee_pick],
                mentor_languages=[problem.mentor_languages[i] for i in mentor_pick],
                mentee_limits=problem.mentee_limits[mentee_pick],
                mentee_preferred_tags=[problem.mentee_preferred_tags[i] for i in mentee_pick],
                mentee_preferred_mentors=[
                    [position[m] for m in problem.mentee_preferred_mentors[i] if m in position]
                    for i in mentee_pick],
            )
            sub_model = FitModel(sub, Weights.from_settings(settings),
                                 settings.match_preference_boost)
            exact = solve_optimal(sub_model, top_k=len(mentor_pick))
            top_k = solve_optimal(sub_model, top_k=settings.match_top_k)
            sub_greedy = solve_greedy(sub_model, top_k=settings.match_top_k)
            print(f"\n[{len(mentee_pick)} x {len(mentor_pick)} sub-instance, "
                  f"{int(sub.remaining.sum())} places] exact "
                  f"(dense, {exact.arcs} arcs): fit {exact.total_fit:.3f} in "
                  f"{exact.solver_ms:.0f} ms; top-{settings.match_top_k}: "
                  f"{top_k.total_fit:.3f} in {top_k.solver_ms:.0f} ms "
                  f"({(top_k.total_fit / exact.total_fit - 1) * 100:+.3f} %); greedy "
                  f"{sub_greedy.total_fit:.3f}")
        finally:
            await worker_db.dispose()
            await app_db.dispose()


if __name__ == "__main__":
    main()
