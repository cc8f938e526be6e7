"""Runs that crash or fail: a worker killed mid-run (SIGKILL) is noticed by its lease and
re-run; a failing try is retried; `failed` only after the last try; `matching.run_finished`
goes to the directors."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.config import Settings
from app.core.db import Database
from app.core.jobqueue import AUTO_MATCH_JOB, enqueue_job
from app.core.redis import queue_name
from app.models import Assignment, MatchingRun, OutboxEvent, User
from app.services.matching import execution
from app.services.matching.execution import (
    RUN_FINISHED,
    RunWillRetry,
    execute_matching_run,
    recover_stale_runs,
)
from app.workers import CRON_JOBS
from tests.support.factories import Factory
from tests.support.harness import ROOT as ROOT_DIR
from tests.support.worker_helpers import (
    advisory_locks,
    job_result,
    lock_waiters,
    run_burst_worker,
    wait_until,
)

WORKER_SCRIPT = """
import asyncio
from arq.worker import Worker
from app.config import get_settings
from app.workers import worker_options

async def main():
    options = {**worker_options(get_settings()), "cron_jobs": [], "handle_signals": False,
               "poll_delay": 0.05}
    await Worker(**options).main()

asyncio.run(main())
"""


async def get_run(system_db: Database, job_id: str) -> MatchingRun:
    async with system_db.transaction(None) as session:
        return await session.scalar(select(MatchingRun).where(MatchingRun.job_id == job_id)
                                    .execution_options(populate_existing=True))


async def finished_events(system_db: Database, job_id: str) -> list[OutboxEvent]:
    async with system_db.transaction(None) as session:
        return list(await session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == RUN_FINISHED, OutboxEvent.data["job_id"].astext == job_id)))


def test_a_crash_is_noticed_within_a_minute(settings: Settings) -> None:
    """The sweep runs every 15 s and a lease lasts 30 s by default: a dead worker's run is
    re-queued at most 45 s after its last heartbeat."""
    sweep = next(c for c in CRON_JOBS if c.name == "cron:recover_matching_runs")
    defaults = Settings.model_fields
    assert sweep.cron(settings).second == {0, 15, 30, 45}
    lease = defaults["match_lease_seconds"].default
    beat = defaults["match_heartbeat_seconds"].default
    period = defaults["match_recovery_interval_seconds"].default
    assert beat * 3 <= lease and lease + period <= 60


class TestCrash:
    async def test_worker_killed_mid_run_is_rerun_by_the_sweep(
        self, factory: Factory, system_db: Database, settings: Settings, redis
    ) -> None:
        director = await factory.user("director")
        mentors = [await factory.mentor(mentor_max_mentees=2) for _ in range(3)]
        mentees = [await factory.mentee(interests=["python"]) for _ in range(5)]
        job = f"match-{uuid.uuid4()}"
        await enqueue_job(redis, settings, AUTO_MATCH_JOB, job_id=job,
                          mentee_ids=[str(m.id) for m in mentees],
                          mentor_ids=[str(m.id) for m in mentors])
        env = {**os.environ, "MATCH_HEARTBEAT_SECONDS": "0.3", "MATCH_LEASE_SECONDS": "1.5"}
        async with system_db.sessions() as blocker, blocker.begin():
            # Hold a mentor row: the run stops inside its transaction, after taking the lock.
            await blocker.execute(select(User.id).where(User.id == mentors[1].id)
                                  .with_for_update())
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", WORKER_SCRIPT, cwd=ROOT_DIR, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                await wait_until(lambda: advisory_locks(system_db, granted=True), within=60,
                                 message="the worker's run to hold the matcher lock")
                await wait_until(lambda: lock_waiters(system_db, "transactionid"),
                                 message="the worker's run to wait for the mentor row")
                beat = (await get_run(system_db, job)).heartbeat_at
                await wait_until(
                    lambda: _heartbeat_after(system_db, job, beat), within=10,
                    message="the lease to be renewed while the run waits")
            finally:
                process.send_signal(signal.SIGKILL)
                assert await process.wait() == -signal.SIGKILL
        run = await get_run(system_db, job)
        assert (run.status, run.attempts) == ("running", 1)

        short = settings.model_copy(update={"match_lease_seconds": 1.5})
        # Within the lease, the sweep leaves it alone; after it, the run is re-queued.
        await recover_stale_runs(system_db, settings=settings, redis=redis)
        assert (await get_run(system_db, job)).status == "running"
        await asyncio.sleep(1.6)
        assert (await recover_stale_runs(system_db, settings=short, redis=redis)
                )["requeued"] >= 1
        assert (await get_run(system_db, job)).status == "queued"

        # The dead job itself stays in arq's queue until its in-progress key expires (job
        # timeout); then it finds the run done (checked below). Out of the way for now, so
        # the burst worker, which waits for an empty queue, can finish.
        assert await redis.zrem(queue_name(settings), job) == 1
        await run_burst_worker(short)  # runs `<job>:try-2`
        info = await job_result(settings, f"{job}:try-2")
        assert info.success and info.result["status"] == "done"
        run = await get_run(system_db, job)
        assert (run.status, run.attempts, run.assigned_count) == ("done", 2, 5)
        async with system_db.transaction(None) as session:
            rows = list(await session.scalars(select(Assignment).where(
                Assignment.mentee_id.in_([m.id for m in mentees]))))
            events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.type == "assignment.created",
                OutboxEvent.data["assignment_id"].astext.in_([str(r.id) for r in rows])))
        assert len(rows) == len({r.mentee_id for r in rows}) == 5 and events == 5
        (finished,) = await finished_events(system_db, job)
        assert finished.data["status"] == "done" and finished.data["attempts"] == 2
        assert director.id in finished.recipients
        # The dead job's own late retry changes nothing.
        again = await execute_matching_run(system_db, settings=settings, job_id=job)
        assert (again["status"], again["attempts"]) == ("done", 2)
        assert len(await finished_events(system_db, job)) == 1

    async def test_a_run_out_of_tries_is_failed_with_an_event(
        self, factory: Factory, system_db: Database, settings: Settings, redis
    ) -> None:
        director = await factory.user("director")
        job = f"match-{uuid.uuid4()}"
        await factory.add(MatchingRun(
            job_id=job, status="running", attempts=settings.match_max_attempts,
            started_at=datetime.now(UTC) - timedelta(minutes=5),
            heartbeat_at=datetime.now(UTC) - timedelta(minutes=2)))
        result = await recover_stale_runs(system_db, settings=settings, redis=redis)
        assert result["failed"] >= 1
        run = await get_run(system_db, job)
        assert run.status == "failed" and "no heartbeat" in run.error
        assert run.finished_at is not None
        (finished,) = await finished_events(system_db, job)
        assert finished.data["status"] == "failed" and director.id in finished.recipients
        assert finished.refresh_priority == "normal"


class TestRetries:
    async def test_a_failing_try_is_retried_and_failed_only_after_the_last(
        self, factory: Factory, system_db: Database, settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        mentor = await factory.mentor()
        mentee = await factory.mentee()
        calls = []
        real = execution.auto_match

        async def flaky(session, **kw):
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError(f"boom {len(calls)}")
            return await real(session, **kw)

        monkeypatch.setattr(execution, "auto_match", flaky)
        job = f"match-{uuid.uuid4()}"
        scope = {"mentee_ids": [mentee.id], "mentor_ids": [mentor.id]}
        for attempt in (1, 2):
            with pytest.raises(RunWillRetry):
                await execute_matching_run(system_db, settings=settings, job_id=job, **scope)
            run = await get_run(system_db, job)
            assert (run.status, run.attempts) == ("queued", attempt)
            assert run.error == f"RuntimeError: boom {attempt}"
            assert await finished_events(system_db, job) == []
        summary = await execute_matching_run(system_db, settings=settings, job_id=job, **scope)
        assert (summary["status"], summary["attempts"], summary["assigned"]) == ("done", 3, 1)

        calls.clear()
        once = settings.model_copy(update={"match_max_attempts": 1})
        other = f"match-{uuid.uuid4()}"
        with pytest.raises(RuntimeError, match="boom 1"):
            await execute_matching_run(system_db, settings=once, job_id=other, **scope)
        run = await get_run(system_db, other)
        assert (run.status, run.attempts) == ("failed", 1)
        (finished,) = await finished_events(system_db, other)
        assert finished.data["error"] == "RuntimeError: boom 1"

    async def test_a_try_that_lost_its_lease_commits_nothing(
        self, factory: Factory, system_db: Database, settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A worker that was paused past its lease comes back after the run was taken over:
        its result is fenced off by the try number."""
        mentor = await factory.mentor()
        mentee = await factory.mentee()
        real = execution.auto_match
        job = f"match-{uuid.uuid4()}"

        async def overtaken(session, **kw):
            outcome = await real(session, **kw)
            async with system_db.transaction(None) as other:  # the sweep and a new try
                await other.execute(update(MatchingRun).where(MatchingRun.job_id == job)
                                    .values(attempts=MatchingRun.attempts + 1))
            return outcome

        monkeypatch.setattr(execution, "auto_match", overtaken)
        await execute_matching_run(system_db, settings=settings, job_id=job,
                                   mentee_ids=[mentee.id], mentor_ids=[mentor.id])
        run = await get_run(system_db, job)
        assert (run.status, run.attempts) == ("running", 2)
        async with system_db.transaction(None) as session:
            assert await session.scalar(select(func.count()).select_from(Assignment).where(
                Assignment.mentee_id == mentee.id)) == 0


async def _heartbeat_after(system_db: Database, job_id: str, beat: datetime) -> bool:
    run = await get_run(system_db, job_id)
    return run.heartbeat_at is not None and run.heartbeat_at > beat
