"""Retention: old plumbing rows and audit entries go, in batches, without long locks.

Each batch is its own short transaction deleting at most `retention_batch` rows, oldest
first, through an index on the age column (migration 0009), so no statement holds locks
for long and the relay, the deliveries and the API carry on meanwhile. Audit entries are
removed only through `purge_audit_log` (SECURITY DEFINER): no application role may delete
them directly.
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


def _purge_statement(table: str, column: str, condition: str):
    return text(f"""
        with doomed as (
            select ctid from {table}
             where {condition} and {column} < :cutoff
             order by {column} limit :batch
        ), gone as (
            delete from {table} t using doomed where t.ctid = doomed.ctid returning 1
        )
        select count(*) from gone""")


_STATEMENTS = {table: _purge_statement(table, column, condition)
               for table, (column, _, condition) in _PURGES.items()}
_PURGE_AUDIT = text("select purge_audit_log(:cutoff, :batch)")


# Told of each batch: (table, rows removed, seconds its transaction took, locks included).
BatchObserver = Callable[[str, int, float], None]


async def purge_expired(db: Database, *, settings: Settings, now: datetime,
                        on_batch: BatchObserver | None = None) -> dict[str, int]:
    """Delete what is older than its retention setting; returns the rows removed per table.
    `on_batch` (benchmarks, tests) is told of every batch."""
    removed: dict[str, int] = {}
    for table, (_, days_setting, _) in _PURGES.items():
        cutoff = now - timedelta(days=getattr(settings, days_setting))
        removed[table] = await _in_batches(db, table, _STATEMENTS[table], cutoff, settings,
                                           on_batch)
    cutoff = now - timedelta(days=settings.retention_audit_days)
    removed["audit_log"] = await _in_batches(db, "audit_log", _PURGE_AUDIT, cutoff, settings,
                                             on_batch)
    log.info("retention_purged", **removed)
    return removed


async def _in_batches(db: Database, table: str, statement, cutoff: datetime,
                      settings: Settings, on_batch: BatchObserver | None) -> int:
    total = 0
    while True:
        started = time.perf_counter()
        async with db.transaction(None) as session:
            count = (await session.execute(
                statement, {"cutoff": cutoff, "batch": settings.retention_batch})).scalar_one()
        if on_batch is not None:
            on_batch(table, count, time.perf_counter() - started)
        total += count
        if count < settings.retention_batch:
            return total
