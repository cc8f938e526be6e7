"""SLA prioritizer over 1M work items: the time of one sweep (one set-based statement).

    python -m bench.prioritizer_bench [--items 1000000] [--open-share 0.3]

Seeds a fresh database: 20K mentees (most with a mentor) and `--items` work items created
over the last 14 days with the SLA of their kind, `--open-share` of them unfinished. The
state is set as the cron would have left it 5 minutes ago (overdue / escalated up to then),
then the sweeps are timed as the worker runs them (worker role, own transaction, commit):
1. the regular 5-minute sweep (what the cron does in steady state);
2. the same sweep again at once (nothing left to change: the cost of looking);
3. a cold start: the state reset to "never swept" (e.g. after the workers were down for
   days) and one sweep catching up on everything.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from app.config import Settings
from app.core.db import Database
from app.services.workqueue.prioritizer import sweep_work_queue
from bench._database import BenchDatabase

SEED_USERS = """
insert into users (id, email, name, role, is_mentor)
select gen_random_uuid(), 'mentor' || g || '@bench.test', 'Mentor ' || g, 'mentor', true
  from generate_series(1, 1000) g;
insert into users (id, email, name, role)
select gen_random_uuid(), 'mentee' || g || '@bench.test', 'Mentee ' || g, 'mentee'
  from generate_series(1, 20000) g;
create table bench_mentors as
select row_number() over (order by id) - 1 as i, id from users where role = 'mentor';
create table bench_mentees as
select row_number() over (order by id) - 1 as i, id from users where role = 'mentee';
insert into assignments (id, mentee_id, mentor_id, source)
select gen_random_uuid(), e.id, m.id, 'manual'
  from bench_mentees e join bench_mentors m on m.i = e.i % 1000
 where e.i % 10 <> 0;  -- 90 % of mentees have a mentor
"""

SEED_ITEMS = """
insert into work_items (id, kind, priority, status, mentee_id, source_key, title, created_at,
                        due_at, updated_at, completed_at)
select gen_random_uuid(), k.kind, k.priority,
       case when r.done then 'done' else 'open' end,
       e.id, 'bench:' || r.g, 'Item ' || r.g, r.created,
       r.created + k.hours * interval '1 hour', r.created,
       case when r.done then r.created + interval '1 hour' end
  from (select g, now() - random() * interval '14 days' as created,
               random() >= $2::float8 as done
          from generate_series(1, $1::int) g) r
  join bench_mentees e on e.i = r.g % 20000
  join (values (0, 'mission_review', 'high', 48), (1, 'risk_assessment', 'normal', 72),
               (2, 'goal_feedback', 'normal', 168), (3, 'session_followup', 'low', 24))
       as k(n, kind, priority, hours) on k.n = r.g % 4
"""

# The state the cron left at its previous tick (5 minutes ago).
PREVIOUS_TICK = """
update work_items w
   set overdue = w.due_at <= now() - interval '5 minutes',
       escalated_at = case when w.created_at + (w.due_at - w.created_at) * 0.75
                                <= now() - interval '5 minutes'
                           then now() - interval '5 minutes' end
 where w.status <> 'done'
"""

NEVER_SWEPT = "update work_items set overdue = false, escalated_at = null where status <> 'done'"


async def timed_sweep(worker_db: Database, settings: Settings, label: str) -> None:
    started = time.perf_counter()
    result = await sweep_work_queue(worker_db, settings=settings, now=datetime.now(UTC))
    elapsed = (time.perf_counter() - started) * 1000
    print(f"{label:<36} {elapsed:8.0f} ms   escalated {result.escalated:>7}, "
          f"newly overdue {result.overdue:>7}, events {result.events:>7}, "
          f"{result.batches} batch(es), {elapsed / result.batches:.0f} ms per batch")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--open-share", type=float, default=0.3)
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    with BenchDatabase() as bench:
        asyncio.run(run(bench, args))


async def run(bench: BenchDatabase, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    connection = await bench.connect()
    try:
        await connection.execute(SEED_USERS)
        await connection.execute(SEED_ITEMS, args.items, args.open_share)
        await connection.execute(PREVIOUS_TICK)
        await connection.execute("vacuum analyze")
        open_items = await connection.fetchval(
            "select count(*) from work_items where status <> 'done'")
    finally:
        await connection.close()
    print(f"seeded {args.items} work items ({open_items} unfinished) in "
          f"{time.perf_counter() - started:.1f} s\n")
    worker_db = Database.connect(bench.settings.worker_db_url, bench.settings)
    try:
        await timed_sweep(worker_db, bench.settings, "regular sweep (5 min after the last)")
        await timed_sweep(worker_db, bench.settings, "same sweep again (nothing to do)")
        await timed_sweep(worker_db, bench.settings, "and once more")
        await bench.sql(NEVER_SWEPT)
        await bench.sql("vacuum analyze work_items")
        await timed_sweep(worker_db, bench.settings, "cold start (never swept)")
        await timed_sweep(worker_db, bench.settings, "next sweep right after it")
        await bench.sql("vacuum analyze work_items")  # what autovacuum does after mass updates
        await timed_sweep(worker_db, bench.settings, "next sweep after autovacuum")
    finally:
        await worker_db.dispose()


if __name__ == "__main__":
    main()
