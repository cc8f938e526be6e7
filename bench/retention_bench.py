"""Retention on 1M published outbox rows: the daily purge, batch by batch, lock hold included.

    .venv/bin/python -m bench.retention_bench [--rows 1000000] [--days 40] [--pending 10000]
                                              [--batch N]

Creates a fresh migrated database (the tests' harness: TEST_DATABASE_URL or the embedded
server), loads `--rows` published outbox events with COPY as the migrating account
(published over the last `--days` days, so those older than RETENTION_OUTBOX_DAYS, 7 by
default, are due) plus `--pending` unpublished ones (never purged, whatever their age),
VACUUM ANALYZE, then runs `purge_expired` as the worker runs it (`retention_batch` rows
per transaction, or `--batch`). Meanwhile a probe does what the relay does every 100 ms
(insert an event, claim the pending ones) to show the purge does not hold it up. Prints
the total time, rows per second, each table's batches, the longest batch (= the longest
time one batch holds its row locks) and the probe's worst latency, then checks that exactly
the due rows went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.core.db import Database
from app.services.compliance.retention import purge_expired
from bench._database import BenchDatabase


def _rows(count: int, days: int, now: datetime, pending: int):
    rng = random.Random(7)
    recipients = [uuid.uuid4() for _ in range(2000)]
    data = json.dumps({"assignment_id": str(uuid.uuid4()), "mentee_id": str(uuid.uuid4()),
                       "mentor_id": str(uuid.uuid4()), "source": "auto", "score": 0.81,
                       "reasons": ["shared specialties: python", "time zones 1 h apart"]})
    span = days * 86400
    for i in range(count + pending):
        created = now - timedelta(seconds=rng.uniform(0, span))
        published = created + timedelta(seconds=rng.uniform(0.1, 5)) if i < count else None
        yield (uuid.uuid4(), "assignment.created", created, data, "high",
               [rng.choice(recipients), rng.choice(recipients)], created, published)


async def _probe(db: Database, stop: asyncio.Event, latencies: list[float]) -> None:
    """The relay's pattern: write an event, claim a few pending ones, every 100 ms."""
    while not stop.is_set():
        started = time.perf_counter()
        async with db.transaction(None) as session:
            await session.execute(text(
                "insert into outbox_events (id, type, occurred_at, data, refresh_priority) "
                "values (gen_random_uuid(), 'bench.probe', now(), '{}', 'normal')"))
            await session.execute(text("""
                update outbox_events set claimed_until = now() + interval '30 seconds'
                 where id in (select id from outbox_events where published_at is null
                               order by created_at limit 10 for update skip locked)"""))
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.1)


async def run(bench: BenchDatabase, args: argparse.Namespace) -> None:
    settings = bench.settings
    if args.batch:
        settings = settings.model_copy(update={"retention_batch": args.batch})
    now = datetime.now(UTC)
    started = time.perf_counter()
    connection = await bench.connect()
    try:
        await connection.copy_records_to_table(
            "outbox_events", columns=["id", "type", "occurred_at", "data", "refresh_priority",
                                      "recipients", "created_at", "published_at"],
            records=_rows(args.rows, args.days, now, args.pending))
        await connection.execute("vacuum analyze outbox_events")
        cutoff = now - timedelta(days=settings.retention_outbox_days)
        due = await connection.fetchval(
            "select count(*) from outbox_events where published_at < $1", cutoff)
        size = await connection.fetchval(
            "select pg_size_pretty(pg_total_relation_size('outbox_events'))")
    finally:
        await connection.close()
    print(f"loaded {args.rows:,} published + {args.pending:,} unpublished outbox rows "
          f"({size} with indexes) in {time.perf_counter() - started:.1f} s; due for purge: "
          f"{due:,} (published more than {settings.retention_outbox_days} days ago); "
          f"batch {settings.retention_batch:,}")

    worker = Database.connect(settings.worker_db_url, settings)
    batches: dict[str, list[float]] = defaultdict(list)
    latencies: list[float] = []
    stop = asyncio.Event()
    try:
        probe = asyncio.create_task(_probe(worker, stop, latencies))
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        removed = await purge_expired(
            worker, settings=settings, now=now,
            on_batch=lambda table, count, seconds: batches[table].append(seconds))
        total = time.perf_counter() - started
        stop.set()
        await probe
        async with worker.transaction(None) as session:
            left_due = (await session.execute(text(
                "select count(*) from outbox_events where published_at < :cutoff"),
                {"cutoff": now - timedelta(days=settings.retention_outbox_days)})).scalar_one()
            pending = (await session.execute(text(
                "select count(*) from outbox_events where published_at is null "
                "and type <> 'bench.probe'"))).scalar_one()
    finally:
        await worker.dispose()
    outbox = batches["outbox_events"]
    print(f"\npurge_expired: {total:.2f} s, {removed['outbox_events']:,} outbox rows removed "
          f"({removed['outbox_events'] / total:,.0f} rows/s); load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"outbox batches: {len(outbox)}, median {statistics.median(outbox) * 1000:.0f} ms, "
          f"p95 {sorted(outbox)[int(len(outbox) * 0.95)] * 1000:.0f} ms, "
          f"longest {max(outbox) * 1000:.0f} ms (the longest any batch held its locks); "
          f"median of the first 10 {statistics.median(outbox[:10]) * 1000:.0f} ms, of the "
          f"last 10 {statistics.median(outbox[-10:]) * 1000:.0f} ms")
    for table in ("inbox_events", "webhook_attempts", "audit_log"):
        print(f"{table}: {removed[table]} removed in {len(batches[table])} batch(es)")
    print(f"relay-like probe during the purge: {len(latencies)} round trips, median "
          f"{statistics.median(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms")
    assert removed["outbox_events"] == due and left_due == 0, (removed, due, left_due)
    assert pending == args.pending, pending
    print(f"check: every due row went ({due:,}), the {pending:,} unpublished stayed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=None,
                        help="rows per batch (default: the retention_batch setting)")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: the database is dropped
    with BenchDatabase() as bench:
        asyncio.run(run(bench, args))


if __name__ == "__main__":
    main()
