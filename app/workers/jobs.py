"""Jobs of the matcher, the SLA prioritizer and the capacity checker (thin calls to services).

arq runs a job at least once, so each one is safe to repeat: the matcher records its result
by job id and commits everything in one transaction, the prioritizer and the capacity
checker only change what still needs changing. Nothing is retried except through
`arq.Retry` (none of these needs it: a failed matcher run is recorded as `failed`).

Cron jobs: `unique=True` gives each tick the job id `cron:<name>:<tick time>`, so any number
of workers enqueue the tick once; a fixed `job_id` is not used because arq would then refuse
every later tick while the kept result exists. `keep_result` keeps that id taken for an
hour, so a worker that enqueues late (its event loop was busy) cannot run a finished tick
again. `max_tries=1`: a tick is not retried; the next one does the work.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from arq import cron, func

from app.core.jobqueue import AUTO_MATCH_JOB, CAPACITY_CHECK_JOB
from app.services.matching.engine import execute_matching_run
from app.services.mentors.capacity_checker import check_capacity
from app.services.workqueue.prioritizer import sweep_work_queue
from app.workers import CRON_JOBS, FUNCTIONS


def _ids(values: list[str] | None) -> list[uuid.UUID] | None:
    return [uuid.UUID(v) for v in values] if values is not None else None


async def auto_match_mentors(ctx: dict[str, Any], *, requested_by: str | None = None,
                             mentee_ids: list[str] | None = None,
                             mentor_ids: list[str] | None = None) -> dict[str, Any]:
    """One matcher run; its result goes to `matching_runs` under this job's id."""
    return await execute_matching_run(
        ctx["db"], settings=ctx["settings"], job_id=ctx["job_id"],
        requested_by=uuid.UUID(requested_by) if requested_by else None,
        mentee_ids=_ids(mentee_ids), mentor_ids=_ids(mentor_ids),
    )


async def prioritize_work_queue(ctx: dict[str, Any]) -> dict[str, int]:
    result = await sweep_work_queue(ctx["db"], settings=ctx["settings"], now=datetime.now(UTC))
    return {"escalated": result.escalated, "overdue": result.overdue, "events": result.events,
            "batches": result.batches}


async def check_mentor_capacity(ctx: dict[str, Any], mentor_id: str | None = None,
                                at: str | None = None) -> dict[str, int]:
    """Every mentor this week (cron), or one for the week a booking or reschedule lands in
    (`at`, enqueued after it: `enqueue_capacity_check`)."""
    async with ctx["db"].transaction(None) as session:
        result = await check_capacity(
            session, mentor_id=uuid.UUID(mentor_id) if mentor_id else None,
            at=datetime.fromisoformat(at) if at else None,
        )
    return {"mentors": result.mentors, "exceeded": result.exceeded, "alerts": result.alerts}


FUNCTIONS += [
    # A run may take seconds at full size; tries cover a worker lost mid-run.
    func(auto_match_mentors, name=AUTO_MATCH_JOB, timeout=600, max_tries=3),
    # Deduplicated by job id per mentor: no result kept, so the next booking can enqueue.
    func(check_mentor_capacity, name=CAPACITY_CHECK_JOB, timeout=120, max_tries=3,
         keep_result=0),
]

CRON_JOBS += [
    cron(prioritize_work_queue, name="cron:prioritize_work_queue",
         minute=set(range(0, 60, 5)), second=0, microsecond=0,
         unique=True, max_tries=1, timeout=240, keep_result=3600),
    cron(check_mentor_capacity, name="cron:check_mentor_capacity",
         minute=7, second=0, microsecond=0,
         unique=True, max_tries=1, timeout=600, keep_result=3600),
]
