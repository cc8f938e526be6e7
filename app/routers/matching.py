"""The auto-matcher: a director starts a run or a dry run (202 + job id), reads it with its
proposals, publishes a dry run; a mentee states preferences."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.core.auth import CurrentMentee, CurrentStaff
from app.core.db import DbSession
from app.core.problems import problems
from app.core.state import SettingsDep, StateDep
from app.schemas.matching import (
    UNPLACED_DETAILS,
    WEIGHTS_DOC,
    MatchingRunAccepted,
    MatchingRunCreate,
    MatchingRunPublic,
    MenteePreferences,
    MenteePreferencesPublic,
    ProposalComponents,
    ProposalPublic,
    PublishRequest,
    PublishResult,
    UnplacedMentee,
)
from app.schemas.types import Identifier
from app.services.matching import preferences as preference_service
from app.services.matching import publish as publish_service
from app.services.matching import runs as matching_runs

router = APIRouter()
DIRECTOR = "/api/v1/director/matching"


@router.post(
    f"{DIRECTOR}/run",
    status_code=202,
    operation_id="run_matching",
    tags=["director"],
    summary="Start an auto-matcher run or dry run",
    description="Enqueues the optimal auto-matcher and returns its job id at once; read the "
    "result at `run_url`. A run assigns; a dry run (`dry_run: true`) only proposes, with "
    "each proposal's fit, weighted terms and reasons, for a director to publish. Runs that "
    "assign are one at a time: a run started while another holds the lock waits for it "
    "(and ends as `skipped` if it waits too long). A run whose worker dies is noticed "
    "within a minute (a lease renewed every few seconds) and re-run, up to 3 tries "
    "(`MATCH_MAX_ATTEMPTS`); `matching.run_finished` tells every director how it ended. "
    "422 `invalid_weights`: bad weights. " + WEIGHTS_DOC,
    response_model=MatchingRunAccepted,
    responses=problems({422: ["invalid_weights"], 503: ["queue_unavailable"]}),
)
async def run_matching(
    request: Request, response: Response, principal: CurrentStaff, session: DbSession,
    state: StateDep,
    body: MatchingRunCreate | None = None,
) -> MatchingRunAccepted:
    scope = body or MatchingRunCreate()
    run = await matching_runs.request_matching_run(
        session, principal=principal, redis=state.redis, settings=state.settings,
        mentee_ids=scope.mentee_ids, mentor_ids=scope.mentor_ids, dry_run=scope.dry_run,
        weights=scope.weights.given() if scope.weights else None,
    )
    url = str(request.url_for("get_matching_run", job_id=run.job_id).path)
    response.headers["Location"] = url
    return MatchingRunAccepted(job_id=run.job_id, status="queued", dry_run=run.dry_run,
                               weights=run.weights, run_url=url)


@router.get(
    f"{DIRECTOR}/runs/{{job_id}}",
    operation_id="get_matching_run",
    name="get_matching_run",
    tags=["director"],
    summary="Read an auto-matcher run (and a dry run's proposals)",
    description="Status, tries, weights, counts, total fit, unplaced mentees with their "
    "reason, timings; for a dry run a page of `proposals` (mentee id order; `limit` 1-200, "
    "default 50; `cursor` from `proposals_next_cursor`; or one mentee's with `mentee_id`) "
    "and, once published, `published_at` and `published_count`. A dry run never published "
    "keeps its proposals `RETENTION_MATCHING_DRY_RUNS_DAYS` (30) after it finished: then "
    "`proposals_expired_at` is set and `proposals` is empty (the rest of the run stays).",
    response_model=MatchingRunPublic,
    responses=problems({404: ["matching_run_not_found"], 422: ["invalid_cursor"]}),
)
async def get_matching_run(
    job_id: Identifier, principal: CurrentStaff,
    session: DbSession, limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    mentee_id: uuid.UUID | None = None,
) -> MatchingRunPublic:
    run = await matching_runs.get_matching_run(session, job_id=job_id)
    proposals, next_cursor = [], None
    if run.dry_run and run.proposals_expired_at is None:
        rows, next_cursor = await matching_runs.list_proposals(
            session, run=run, limit=limit, cursor=cursor, mentee_id=mentee_id)
        proposals = [ProposalPublic(
            mentee_id=p.mentee_id, mentor_id=p.mentor_id, fit=p.fit, reasons=list(p.reasons),
            components=ProposalComponents(specialty=p.specialty, timezone=p.timezone,
                                          load=p.load, language=p.language,
                                          preference=p.preference),
        ) for p in rows]
    return MatchingRunPublic(
        job_id=run.job_id, status=run.status, dry_run=run.dry_run, weights=run.weights,
        requested_by=run.requested_by, attempts=run.attempts,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
        assigned_count=run.assigned_count, unplaced_count=run.unplaced_count,
        total_fit=run.total_fit, duration_ms=run.duration_ms, solver_ms=run.solver_ms,
        unplaced=[UnplacedMentee(mentee_id=k, reason=v, detail=UNPLACED_DETAILS.get(v, v))
                  for k, v in run.unplaced.items()],
        error=run.error, published_at=run.published_at, published_by=run.published_by,
        published_count=(run.publish_result or {}).get("published"),
        proposals_expired_at=run.proposals_expired_at,
        proposals=proposals, proposals_next_cursor=next_cursor,
    )


@router.post(
    f"{DIRECTOR}/runs/{{job_id}}/publish",
    operation_id="publish_matching_run",
    tags=["director"],
    summary="Publish a dry run's proposals",
    description="Commits the proposals that still hold now, under the matcher's locks: the "
    "mentee still waits and is still a mentee, the mentor is still a mentor with a free "
    "place (the best fits keep the places there are), the mentee's time-zone limit (as it "
    "is now) allows the pair; `exclude_mentee_ids` leaves mentees out. Each one published "
    "is an assignment (source `auto`, its fit and reasons) with `assignment.created`; "
    "the others are listed in `skipped` with a reason. 409 `already_published` (a second "
    "publish), `proposals_expired` (retention deleted the proposals of a dry run never "
    "published, `RETENTION_MATCHING_DRY_RUNS_DAYS` after it finished: start a new one), "
    "`not_a_dry_run`, `run_not_finished`, `matching_in_progress` (a run held the "
    "matcher too long); 404 `matching_run_not_found`.",
    response_model=PublishResult,
    responses=problems({404: ["matching_run_not_found"], 409: [
        "already_published", "proposals_expired", "run_not_finished", "not_a_dry_run",
        "matching_in_progress"]}),
)
async def publish_matching_run(
    job_id: Identifier, principal: CurrentStaff, session: DbSession, settings: SettingsDep,
    body: PublishRequest | None = None,
) -> PublishResult:
    result = await publish_service.publish_run(
        session, principal=principal, settings=settings, job_id=job_id,
        exclude_mentee_ids=(body or PublishRequest()).exclude_mentee_ids,
    )
    return PublishResult.model_validate(result)


@router.get(
    "/api/v1/mentee/preferences",
    operation_id="get_mentee_preferences",
    tags=["mentee"],
    summary="The mentee's matching preferences",
    response_model=MenteePreferencesPublic,
)
async def get_preferences(principal: CurrentMentee,
                          session: DbSession) -> MenteePreferencesPublic:
    return await preference_service.get_preferences(session, principal=principal)


@router.put(
    "/api/v1/mentee/preferences",
    operation_id="put_mentee_preferences",
    tags=["mentee"],
    summary="State matching preferences",
    description="Replaces the preferences. The matcher honours them: preferred specialties "
    "and mentors raise the fit (a boost of 0.1 for a preferred mentor, up to 0.1 for the "
    "share of preferred specialties covered); `languages` (BCP 47 tags) feed the language "
    "term (instead of the languages on the mentee's profile); `max_timezone_offset_hours` "
    "(0-12, null: none) is a hard limit: never a mentor whose UTC offset is further away "
    "at any time of the year (the larger of the January and July gaps, so daylight saving "
    "time on either side cannot break it).",
    response_model=MenteePreferencesPublic,
)
async def put_preferences(body: MenteePreferences, principal: CurrentMentee,
                          session: DbSession) -> MenteePreferencesPublic:
    return await preference_service.put_preferences(session, principal=principal,
                                                    preferences=body)
