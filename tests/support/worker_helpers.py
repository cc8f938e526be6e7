"""Helpers for the worker tests: burst workers on the real Redis, polling, lock probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.jobs import Job
from arq.worker import Worker
from sqlalchemy import text

from app.config import Settings
from app.core.db import Database
from app.core.jobqueue import arq_client
from app.workers import worker_options

WORKER_CRON_NAMES = ("cron:prioritize_work_queue", "cron:check_mentor_capacity",
                     "cron:recover_matching_runs")


async def run_burst_worker(settings: Settings, **overrides: Any) -> Worker:
    """Run a real arq worker until the queue is empty. Other areas' cron jobs are left out
    so a tick that falls inside the burst cannot run (or fail) one of their jobs here, and
    so are the relay and webhook loops (tests/events drives those)."""
    options = worker_options(settings, loops=False)
    options["cron_jobs"] = [c for c in options["cron_jobs"] if c.name in WORKER_CRON_NAMES]
    options.update({"burst": True, "poll_delay": 0.05, "handle_signals": False, **overrides})
    worker = Worker(**options)
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def wait_until(predicate: Callable[[], Awaitable[bool]], *, within: float = 20.0,
                     message: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.05)


async def scalar(database: Database, sql: str, **params: Any) -> Any:
    async with database.transaction(None) as session:
        return await session.scalar(text(sql), params)


async def advisory_locks(database: Database, *, granted: bool) -> int:
    return await scalar(
        database,
        "select count(*) from pg_locks where locktype = 'advisory' and granted = :granted "
        "and database = (select oid from pg_database where datname = current_database())",
        granted=granted,
    )


async def lock_waiters(database: Database, locktype: str) -> int:
    """Backends of this database waiting for a lock of `locktype` (relation rows are
    'transactionid' / 'tuple' waits)."""
    return await scalar(
        database,
        "select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid "
        "where not l.granted and l.locktype = :locktype and a.datname = current_database()",
        locktype=locktype,
    )


async def job_result(settings: Settings, job_id: str):
    """arq's stored result of a finished job (JobResult: success, result, job_try...)."""
    pool = arq_client(settings)
    try:
        return await Job(job_id, pool).result_info()
    finally:
        await pool.aclose()
