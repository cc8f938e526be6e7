"""The jobs in a real arq worker on the real Redis: registration and the health check (a
worker killed mid-run: tests/matching/test_matching_recovery.py)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from arq.jobs import Job
from arq.worker import Worker
from sqlalchemy import func, select

from app.config import Settings
from app.core.db import Database
from app.core.jobqueue import (
    AUTO_MATCH_JOB,
    CAPACITY_CHECK_JOB,
    arq_client,
    enqueue_capacity_check,
    enqueue_job,
    health_check_key,
)
from app.core.redis import queue_name, user_stream_key
from app.models import Assignment, MatchingRun, OutboxEvent, WorkItem
from tests.support.factories import Factory
from tests.support.harness import ROOT as ROOT_DIR
from tests.support.worker_helpers import (
    job_result,
    run_burst_worker,
    wait_until,
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
        # The capacity check looks at the week the session lands in (`at`, as after a
        # booking): 30 minutes from now may be next week (Sunday 23:30 UTC).
        soon = datetime.now(UTC) + timedelta(minutes=30)
        await factory.session(mentor, await factory.mentee(), starts_at=soon)
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
        assert await enqueue_capacity_check(redis, no_delay, mentor.id, soon)
        assert not await enqueue_capacity_check(redis, no_delay, mentor.id, soon)  # deduped

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
        assert await enqueue_capacity_check(redis, no_delay, mentor.id, soon)
        await run_burst_worker(settings)

    async def test_arq_check_is_true_within_seconds_and_fails_soon_after_sigkill(
            self, settings: Settings, redis) -> None:
        """A real `arq app.workers.WorkerSettings` with the default health interval: the
        check passes, the record's counters follow the jobs it runs, and after SIGKILL the
        check fails within 90 s (the record expires `WORKER_HEALTH_CHECK_SECONDS` + 1 s
        after the last one was written)."""
        # Per-minute crons would make the counters race the job this test enqueues: daily.
        env = {**os.environ, "SESSION_TIMERS_INTERVAL_SECONDS": "86400",
               "PROGRAMME_METRICS_INTERVAL_SECONDS": "86400"}
        key = health_check_key(settings)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "arq", "app.workers.WorkerSettings", cwd=ROOT_DIR, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await wait_until(lambda: redis.exists(key), within=120,
                             message="the worker's first health record")
            assert await arq_check(env) == 0
            # The run's queue may hold other tests' deferred jobs: count from here.
            before = await _completed(redis, key)
            assert await enqueue_job(redis, settings, CAPACITY_CHECK_JOB)
            await wait_until(lambda: _completed_more_than(redis, key, before),
                             within=settings.worker_health_check_seconds + 30,
                             message="the health record to count the job")
        finally:
            process.kill()
            await process.wait()
        killed = time.monotonic()
        assert await redis.pttl(key) <= (settings.worker_health_check_seconds + 1) * 1000
        while await arq_check(env) != 1:
            assert time.monotonic() - killed < 90, "arq --check still passes"
        assert time.monotonic() - killed < 90

    async def test_burst_drains_the_queue_and_the_outbox_once_and_exits_0(
            self, settings: Settings, system_db: Database, redis) -> None:
        user = uuid.uuid4()
        now = datetime.now(UTC)
        events = [OutboxEvent(id=uuid.uuid4(), type="workqueue.item_created", occurred_at=now,
                              data={"n": n}, refresh_priority="normal", recipients=[user])
                  for n in range(5)]
        async with system_db.transaction(None) as session:
            session.add_all(events)
        sweep = f"burst-sweep-{uuid.uuid4()}"
        assert await enqueue_job(redis, settings, "cron:prioritize_work_queue", job_id=sweep)

        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "arq", "app.workers.WorkerSettings", "--burst", cwd=ROOT_DIR,
            env={**os.environ, "WORKER_DRAIN_SECONDS": "120"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 240)
        assert process.returncode == 0, output.decode()[-3000:]

        assert (await job_result(settings, sweep)).success  # the queue ran
        async with system_db.transaction(None) as session:
            unpublished = await session.scalar(select(func.count()).select_from(OutboxEvent)
                                               .where(OutboxEvent.id.in_([e.id for e in events]),
                                                      OutboxEvent.published_at.is_(None)))
        assert unpublished == 0  # the outbox was drained
        assert await redis.xlen(user_stream_key(settings, user)) == 5
        assert b"worker_loops_drained" in output
        assert not await redis.exists(health_check_key(settings))


async def _completed(redis, key: str) -> int:
    """`j_complete` in the worker's health record."""
    return int(re.search(r"j_complete=(\d+)", await redis.get(key)).group(1))


async def _completed_more_than(redis, key: str, count: int) -> bool:
    return await _completed(redis, key) > count


async def test_jobs_cli_reads_the_queue_reruns_a_job_and_lists_results(settings, capsys):
    from app.workers.jobs_cli import main, parse

    job_id = f"manual-{uuid.uuid4().hex}"
    assert await main(parse(["run", "cron:prioritize_work_queue", "--job-id", job_id])) == 0
    assert await main(parse(["run", "cron:prioritize_work_queue", "--job-id", job_id])) == 1
    assert await main(parse(["queue"])) == 0
    listed = capsys.readouterr().out
    assert f"enqueued cron:prioritize_work_queue as job {job_id}" in listed
    assert "not enqueued" in listed
    assert f"{job_id}\tcron:prioritize_work_queue\tdue " in listed
    await run_burst_worker(settings)
    assert await main(parse(["results"])) == 0
    assert f"{job_id}\tcron:prioritize_work_queue\tok\t" in capsys.readouterr().out


async def slow_tick(ctx):
    await asyncio.sleep(float(ctx.get("slow_tick_seconds", 0)))
    return "done"


async def test_a_tick_cancelled_by_a_restart_is_no_failure_and_runs_again(settings) -> None:
    """A worker stopped mid-tick: arq re-queues the cancelled tick (not a failure: counted
    `cancelled`), and the next worker runs it once (cron jobs have max_tries 2)."""
    from app.core import telemetry
    from app.core.jobspec import Periodic

    prefix = f"{settings.redis_prefix}tick{uuid.uuid4().hex[:6]}:"
    # A daily period (ticks at 00:00 UTC only): with the default 5 minutes, a run that
    # crossed a boundary also ran a scheduled tick, and the counts below were off by one.
    local = settings.model_copy(update={"redis_prefix": prefix,
                                        "sla_sweep_interval_seconds": 86_400})
    cron_job = telemetry.instrument_job(
        Periodic(slow_tick, name="slow_tick", every="sla_sweep_interval_seconds").cron(local))
    client = arq_client(local)
    job_id = f"slow_tick:{uuid.uuid4().hex}"
    label = {"function": "slow_tick"}
    before = {outcome: telemetry.REGISTRY.get_sample_value(
        "mentorship_job_runs_total", {**label, "outcome": outcome}) or 0
        for outcome in ("cancelled", "success", "failure")}

    def worker(seconds: float, *, burst: bool) -> Worker:
        return Worker(cron_jobs=[cron_job], redis_pool=arq_client(local),
                      queue_name=queue_name(local), burst=burst, poll_delay=0.05,
                      handle_signals=False, ctx={"slow_tick_seconds": seconds})
    try:
        assert await client.enqueue_job("slow_tick", _job_id=job_id)
        first = worker(60, burst=False)
        running = asyncio.create_task(first.async_run())
        await wait_until(lambda: _started(first), message="the tick to start")
        running.cancel()  # as SIGTERM does: the worker's tasks are cancelled
        await asyncio.gather(running, return_exceptions=True)
        await first.close()
        assert (first.jobs_failed, first.jobs_retried) == (0, 1)

        second = worker(0, burst=True)
        await second.main()
        await second.close()
        assert (second.jobs_complete, second.jobs_failed) == (1, 0)
        result = await Job(job_id, client).result_info()
        assert result.success and result.job_try == 2
    finally:
        await client.aclose()
    after = {outcome: telemetry.REGISTRY.get_sample_value(
        "mentorship_job_runs_total", {**label, "outcome": outcome}) or 0
        for outcome in ("cancelled", "success", "failure")}
    assert {k: after[k] - before[k] for k in after} == {"cancelled": 1, "success": 1,
                                                        "failure": 0}


async def _started(worker: Worker) -> bool:
    return bool(worker.job_tasks)
