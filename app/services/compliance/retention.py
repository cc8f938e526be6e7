"""Retention: old plumbing rows and audit entries go, in batches, without long locks.

Each batch is its own short transaction deleting at most `retention_batch` rows, oldest
first, through an index on the age column (migration 0009), so no statement holds locks
for long and the relay, the deliveries and the API carry on meanwhile. Audit entries are
removed only through `purge_audit_log` (SECURITY DEFINER): no application role may delete
them directly.

Dry runs never published expire `retention_matching_dry_runs_days` after they finished,
except the latest finished run (the waiting list shows its reasons): one short transaction
marks one run (`proposals_expired_at`, under its row lock, so a publish either finished
before or sees the mark and refuses: 409 `proposals_expired`); the trigger of migration
0029 drops its `matching_unplaced` rows with it. Then the expired runs' proposals go in
batches, by the primary key's prefix (run_id). A run and its summary stay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import text

from app.config import Settings
from app.core.db import Database

log = structlog.get_logger("app.retention")

# What goes, oldest first: table -> (age column, extra condition).
_PURGES = {
    "inbox_events": ("received_at", "retention_inbox_days", "true"),
    "outbox_events": ("published_at", "retention_outbox_days", "published_at is not null"),
    "webhook_attempts": ("attempted_at", "retention_webhook_attempts_days", "true"),
}


def _delete_batch(table: str, chosen: str):
    """Delete the rows whose ctids `chosen` selects. `ctid = any(array(...))` is always a TID
    scan; a join on ctid may be planned as a hash join over a seq scan of the whole table
    (seen on matching_proposals: 281 ms per 5,000-row batch with 400K rows, against 32 ms)."""
    return text(f"""
        with gone as (
            delete from {table} where ctid = any(array({chosen})) returning 1
        )
        select count(*) from gone""")


def _purge_statement(table: str, column: str, condition: str):
    return _delete_batch(table, f"select ctid from {table} where {condition} and "
                                f"{column} < :cutoff order by {column} limit :batch")


_STATEMENTS = {table: _purge_statement(table, column, condition)
               for table, (column, _, condition) in _PURGES.items()}
_PURGE_AUDIT = text("select purge_audit_log(:cutoff, :batch)")

# The oldest dry run due to expire, marked; SKIP LOCKED: a run being published is left be
# (FOR UPDATE re-checks `published_at` on the newest row version when it had to wait).
_EXPIRE_DRY_RUN = text("""
    update matching_runs r set proposals_expired_at = :now
     where r.id = (
        select c.id from matching_runs c
         where c.dry_run and c.status = 'done' and c.published_at is null
           and c.proposals_expired_at is null and c.finished_at < :cutoff
           and c.id is distinct from (
               select l.id from matching_runs l
                where l.status = 'done' and l.finished_at is not null
                order by l.finished_at desc limit 1)
         order by c.finished_at limit 1
           for update skip locked)
    returning r.id""")
# Expired runs with proposals left (this run's marks, or a purge interrupted before).
_EXPIRED_WITH_PROPOSALS = text("""
    select r.id from matching_runs r
     where r.proposals_expired_at is not null
       and exists (select from matching_proposals p where p.run_id = r.id)""")
_PURGE_PROPOSALS = _delete_batch(
    "matching_proposals", "select ctid from matching_proposals where run_id = :run_id limit :batch")


# Told of each batch: (table, rows removed, seconds its transaction took, locks included).
BatchObserver = Callable[[str, int, float], None]


async def purge_expired(db: Database, *, settings: Settings, now: datetime,
                        on_batch: BatchObserver | None = None) -> dict[str, int]:
    """Delete what is older than its retention setting; returns the rows removed per table.
    `on_batch` (benchmarks, tests) is told of every batch."""
    removed: dict[str, int] = {}
    for table, (_, days_setting, _) in _PURGES.items():
        cutoff = now - timedelta(days=getattr(settings, days_setting))
        removed[table] = await _in_batches(db, table, _STATEMENTS[table],
                                           {"cutoff": cutoff}, settings, on_batch)
    cutoff = now - timedelta(days=settings.retention_audit_days)
    removed["audit_log"] = await _in_batches(db, "audit_log", _PURGE_AUDIT,
                                             {"cutoff": cutoff}, settings, on_batch)
    removed.update(await _expire_dry_runs(db, settings=settings, now=now, on_batch=on_batch))
    log.info("retention_purged", **removed)
    return removed


async def _expire_dry_runs(db: Database, *, settings: Settings, now: datetime,
                           on_batch: BatchObserver | None) -> dict[str, int]:
    cutoff = now - timedelta(days=settings.retention_matching_dry_runs_days)
    expired = 0
    while True:
        async with db.transaction(None) as session:
            run_id = (await session.execute(
                _EXPIRE_DRY_RUN, {"now": now, "cutoff": cutoff})).scalar_one_or_none()
        if run_id is None:
            break
        expired += 1
    async with db.transaction(None) as session:
        run_ids = list((await session.execute(_EXPIRED_WITH_PROPOSALS)).scalars())
    proposals = 0
    for run_id in run_ids:
        proposals += await _in_batches(db, "matching_proposals", _PURGE_PROPOSALS,
                                       {"run_id": run_id}, settings, on_batch)
    return {"matching_dry_runs": expired, "matching_proposals": proposals}


async def _in_batches(db: Database, table: str, statement, params: dict[str, object],
                      settings: Settings, on_batch: BatchObserver | None) -> int:
    total = 0
    while True:
        started = time.perf_counter()
        async with db.transaction(None) as session:
            count = (await session.execute(
                statement, {**params, "batch": settings.retention_batch})).scalar_one()
        if on_batch is not None:
            on_batch(table, count, time.perf_counter() - started)
        total += count
        if count < settings.retention_batch:
            return total
