"""Matching runs as the API sees them: request one (queued for a worker), read its status.

Kept apart from `app/services/matching/engine.py` so that the API process never imports NumPy and
OR-Tools (about 35 MiB of RSS per process; only workers run the solver)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.jobqueue import AUTO_MATCH_JOB, enqueue_job
from app.models import MatchingRun


async def request_matching_run(
    session: AsyncSession, *, principal: Principal, redis: Redis, settings: Settings,
    mentee_ids: list[uuid.UUID] | None = None, mentor_ids: list[uuid.UUID] | None = None,
) -> MatchingRun:
    """Record a queued run and enqueue the job (job id = the run's `job_id`).

    The row is written first, in the caller's transaction, and the job is enqueued before
    that transaction commits: if Redis refuses, the request fails and nothing is recorded;
    if the worker starts before the commit, its upsert of the same `job_id` waits for this
    transaction (unique index) and then takes the row over; if the commit fails after the
    enqueue, the job still runs and creates the row itself."""
    job_id = f"match-{uuid.uuid4()}"
    now = datetime.now(UTC)
    run = MatchingRun(id=uuid.uuid4(), job_id=job_id, status="queued",
                      requested_by=principal.user_id, created_at=now)
    # RLS lets staff insert runs; no RETURNING needed.
    await session.execute(insert(MatchingRun).values(
        id=run.id, job_id=job_id, status="queued", requested_by=principal.user_id, created_at=now,
    ))
    await enqueue_job(
        redis, settings, AUTO_MATCH_JOB, job_id=job_id,
        requested_by=str(principal.user_id),
        mentee_ids=[str(i) for i in mentee_ids] if mentee_ids is not None else None,
        mentor_ids=[str(i) for i in mentor_ids] if mentor_ids is not None else None,
    )
    return run


async def get_matching_run(session: AsyncSession, *, job_id: str) -> MatchingRun:
    run = await session.scalar(select(MatchingRun).where(MatchingRun.job_id == job_id))
    if run is None:
        raise NotFound("No matching run with this job id", code="matching_run_not_found")
    return run
