"""Director routes of the auto-matcher: start a run (202 + job id), read its result."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.core.auth import CurrentStaff
from app.core.db import DbSession
from app.core.state import StateDep
from app.schemas.common import problem_responses
from app.schemas.matching import (
    MatchingRunAccepted,
    MatchingRunCreate,
    MatchingRunPublic,
    UnplacedMentee,
)
from app.services.matching import runs as matching_runs

router = APIRouter(prefix="/api/v1/director/matching", tags=["director"])


@router.post(
    "/run",
    status_code=202,
    operation_id="run_matching",
    summary="Start an auto-matcher run",
    description="Enqueues the optimal auto-matcher and returns its job id at once; read the "
    "result at `run_url`. Runs are one at a time: a run started while another holds the "
    "lock waits for it (and ends as `skipped` if it waits too long).",
    response_model=MatchingRunAccepted,
    responses=problem_responses(401, 403, 413, 422, 503),
)
async def run_matching(
    request: Request, response: Response, principal: CurrentStaff, session: DbSession,
    state: StateDep,
    body: MatchingRunCreate | None = None,
) -> MatchingRunAccepted:
    scope = body or MatchingRunCreate()
    run = await matching_runs.request_matching_run(
        session, principal=principal, redis=state.redis,
        settings=state.settings,
        mentee_ids=scope.mentee_ids, mentor_ids=scope.mentor_ids,
    )
    url = str(request.url_for("get_matching_run", job_id=run.job_id).path)
    response.headers["Location"] = url
    return MatchingRunAccepted(job_id=run.job_id, status="queued", run_url=url)


@router.get(
    "/runs/{job_id}",
    operation_id="get_matching_run",
    name="get_matching_run",
    summary="Read an auto-matcher run",
    description="Status, counts, total fit, unplaced mentees with their reason, timings.",
    response_model=MatchingRunPublic,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_matching_run(job_id: str, principal: CurrentStaff,
                           session: DbSession) -> MatchingRunPublic:
    run = await matching_runs.get_matching_run(session, job_id=job_id)
    return MatchingRunPublic(
        job_id=run.job_id, status=run.status, requested_by=run.requested_by,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
        assigned_count=run.assigned_count, unplaced_count=run.unplaced_count,
        total_fit=run.total_fit, duration_ms=run.duration_ms, solver_ms=run.solver_ms,
        unplaced=[UnplacedMentee(mentee_id=k, reason=v) for k, v in run.unplaced.items()],
        error=run.error,
    )
