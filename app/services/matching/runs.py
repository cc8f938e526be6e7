"""Matching runs as the API sees them: request one (queued for a worker), read it and its
proposals.

Kept apart from `app/services/matching/engine.py` so that the API process never imports NumPy and
OR-Tools (about 35 MiB of RSS per process; only workers run the solver)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.jobqueue import AUTO_MATCH_JOB, enqueue_job
from app.core.pagination import Keyset
from app.models import MatchingProposal, MatchingRun
from app.services.matching.weights import resolve_weights


async def request_matching_run(
    session: AsyncSession, *, principal: Principal, redis: Redis, settings: Settings,
    mentee_ids: list[uuid.UUID] | None = None, mentor_ids: list[uuid.UUID] | None = None,
    dry_run: bool = False, weights: Mapping[str, float] | None = None,
) -> MatchingRun:
    """Record a queued run (its weights validated and normalised, its scope) and enqueue the
    job (job id = the run's `job_id`).

    The row is written first, in the caller's transaction, and the job is enqueued before
    that transaction commits: if Redis refuses, the request fails and nothing is recorded;
    if the worker starts before the commit, its upsert of the same `job_id` waits for this
    transaction (unique index) and then takes the row over; if the commit fails after the
    enqueue, the job still runs and creates the row itself (with default weights)."""
    chosen = resolve_weights(weights, settings)
    job_id = f"match-{uuid.uuid4()}"
    now = datetime.now(UTC)
    scope = {"mentee_ids": [str(i) for i in mentee_ids] if mentee_ids is not None else None,
             "mentor_ids": [str(i) for i in mentor_ids] if mentor_ids is not None else None}
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "job_id": job_id, "status": "queued",
        "requested_by": principal.user_id, "created_at": now, "dry_run": dry_run,
        "weights": chosen.as_dict(), "scope": scope, "attempts": 0,
    }
    # RLS lets staff insert runs; no RETURNING needed.
    await session.execute(insert(MatchingRun).values(**values))
    await enqueue_job(redis, settings, AUTO_MATCH_JOB, job_id=job_id,
                      requested_by=str(principal.user_id))
    return MatchingRun(**values)


async def get_matching_run(session: AsyncSession, *, job_id: str,
                           for_update: bool = False) -> MatchingRun:
    query = select(MatchingRun).where(MatchingRun.job_id == job_id)
    if for_update:
        query = query.with_for_update()
    run = await session.scalar(query.execution_options(populate_existing=True))
    if run is None:
        raise NotFound("No matching run with this job id", code="matching_run_not_found")
    return run


def run_summary(run: MatchingRun) -> dict[str, Any]:
    return {
        "job_id": run.job_id, "status": run.status, "dry_run": run.dry_run,
        "assigned": run.assigned_count, "unplaced": run.unplaced_count,
        "total_fit": run.total_fit, "duration_ms": run.duration_ms,
        "solver_ms": run.solver_ms, "attempts": run.attempts, "error": run.error,
    }


PROPOSALS_CURSOR = Keyset("proposals", uuid.UUID)  # mentee_id


async def list_proposals(session: AsyncSession, *, run: MatchingRun, limit: int,
                         cursor: str | None = None, mentee_id: uuid.UUID | None = None
                         ) -> tuple[list[MatchingProposal], str | None]:
    """A page of the run's proposals in mentee id order, and the cursor of the next."""
    query = select(MatchingProposal).where(MatchingProposal.run_id == run.id)
    if mentee_id is not None:
        query = query.where(MatchingProposal.mentee_id == mentee_id)
    after = PROPOSALS_CURSOR.decode(cursor)
    if after is not None:
        query = query.where(MatchingProposal.mentee_id > after[0])
    rows = list(await session.scalars(
        query.order_by(MatchingProposal.mentee_id).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], PROPOSALS_CURSOR.encode(rows[limit - 1].mentee_id)
