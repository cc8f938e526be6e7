"""The jobs in a real arq worker on the real Redis: registration and the health check (a
worker killed mid-run: tests/matching/test_matching_recovery.py)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

from arq.worker import Worker
from sqlalchemy import func, select

from app.config import Settings
from app.core.db import Database
from app.core.jobqueue import AUTO_MATCH_JOB, enqueue_capacity_check, enqueue_job
from app.models import Assignment, MatchingRun, OutboxEvent, WorkItem
from app.workers import worker_options
from tests.support.factories import Factory
from tests.support.harness import ROOT as ROOT_DIR
from tests.support.worker_helpers import (
    job_result,
    run_burst_worker,
)


async def arq_check(env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arq", "app.workers.WorkerSettings", "--check",
        cwd=ROOT_DIR, env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


class TestWorker:
    async def test_every_job_runs_in_a_real_worker(
        self, factory: Factory, system_db: Database, settings: Settings, redis
    ) -> None:
        mentor = await factory.mentor(mentor_capacity_weekly=1)
        mentee = await factory.mentee()
        await factory.session(mentor, await factory.mentee(),
                              starts_at=datetime.now(UTC) + timedelta(minutes=30))
        now = datetime.now(UTC)
        late = WorkItem(kind="session_followup", priority="low", mentee_id=mentee.id,
                        source_key=f"test:{uuid.uuid4()}", title="Follow up",
                        created_at=now - timedelta(hours=30), due_at=now - timedelta(hours=6))
        await factory.add(late)

        job = f"match-{uuid.uuid4()}"
        sweep = f"{settings.redis_prefix}sweep-{uuid.uuid4()}"
        assert await enqueue_job(redis, settings, AUTO_MATCH_JOB, job_id=job,
                                 mentee_ids=[str(mentee.id)], mentor_ids=[str(mentor.id)])
        assert await enqueue_job(redis, settings, "cron:prioritize_work_queue", job_id=sweep)
        no_delay = settings.model_copy(update={"capacity_check_delay_seconds": 0})
        assert await enqueue_capacity_check(redis, no_delay, mentor.id)
        assert not await enqueue_capacity_check(redis, no_delay, mentor.id)  # deduplicated

        await run_burst_worker(settings)
        matched, swept = await job_result(settings, job), await job_result(settings, sweep)
        assert matched.success and matched.result["status"] == "done"
        assert swept.success and swept.result["overdue"] >= 1

        async with system_db.transaction(None) as session:
            run = await session.scalar(select(MatchingRun).where(MatchingRun.job_id == job))
            assignment = await session.scalar(
                select(Assignment).where(Assignment.mentee_id == mentee.id))
            item = await session.get_one(WorkItem, late.id)
            alerts = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.type == "capacity.exceeded",
                OutboxEvent.data["mentor_id"].astext == str(mentor.id)))
        assert run.status == "done" and assignment.mentor_id == mentor.id
        assert item.overdue and item.priority == "normal"
        assert alerts == 1
        # The capacity job keeps no result, so the next booking can enqueue it again.
        assert await enqueue_capacity_check(redis, no_delay, mentor.id)
        await run_burst_worker(settings)

    async def test_arq_check_reports_a_live_worker(self, settings: Settings) -> None:
        env = {**os.environ}
        worker = Worker(**{**worker_options(settings), "burst": True, "poll_delay": 0.05,
                           "handle_signals": False})
        try:
            await worker.main()  # records the health check key on its first poll
            assert await arq_check(env) == 0
        finally:
            await worker.close()  # removes the key: no live worker any more
        assert await arq_check(env) == 1
