"""The mentor's dashboard, mentee list and cockpit; the mentee's own home view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.core.auth import CurrentMentee, CurrentMentor
from app.core.db import DbSession
from app.core.http_cache import conditional_json
from app.schemas.common import Page, problem_responses
from app.schemas.dashboard import (
    UTILIZATION_DOC,
    CockpitPublic,
    DashboardPublic,
    MenteeHome,
    MenteeSummary,
)
from app.schemas.risk import RISK_RULES_DOC
from app.services.dashboard import mentees as mentees_service
from app.services.dashboard.mentor import build_dashboard

router = APIRouter()
NOT_MODIFIED = {"description": "`If-None-Match` holds the current `ETag`: nothing changed "
                               "(the tag ignores `generated_at`)."}


@router.get(
    "/api/v1/mentor/dashboard",
    operation_id="get_mentor_dashboard",
    summary="The mentor's dashboard",
    description=(
        "Work queue counts, today's sessions (midnight to midnight in the mentor's time "
        "zone), at-risk mentees with their reasons and score, and capacity.\n\n"
        f"**Capacity utilisation**: {UTILIZATION_DOC}\n" + RISK_RULES_DOC
    ),
    response_model=DashboardPublic,
    responses={304: NOT_MODIFIED, **problem_responses(401, 403, 404)},
    tags=["mentor"],
)
async def get_dashboard(request: Request, principal: CurrentMentor,
                        session: DbSession) -> Response:
    body = await build_dashboard(session, mentor_id=principal.user_id, now=datetime.now(UTC))
    return conditional_json(request, body)


@router.get(
    "/api/v1/mentor/mentees",
    operation_id="list_mentor_mentees",
    summary="The mentor's active mentees with their risk summary",
    description="Ordered by name. " + RISK_RULES_DOC,
    response_model=Page[MenteeSummary],
    responses=problem_responses(401, 403, 422),
    tags=["mentor"],
)
async def list_mentees(
    principal: CurrentMentor,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="From a previous page.")] = None,
    at_risk: Annotated[bool | None, Query(description="Only mentees at risk (true) or "
                                                      "not at risk (false).")] = None,
) -> Page[MenteeSummary]:
    return await mentees_service.list_mentees(
        session, mentor_id=principal.user_id, now=datetime.now(UTC), limit=limit,
        cursor=cursor, at_risk=at_risk,
    )


@router.get(
    "/api/v1/mentor/mentees/{mentee_id}/cockpit",
    operation_id="get_mentee_cockpit",
    summary="Everything about one of the mentor's mentees",
    description=("Profile, assignment, risk, readiness trend, recent and upcoming sessions "
                 "with this mentor, open work items, flags (with notes) and recent "
                 "submissions with their review. 404 unless the mentee is actively assigned "
                 "to the caller."),
    response_model=CockpitPublic,
    responses={304: NOT_MODIFIED, **problem_responses(401, 403, 404, 422)},
    tags=["mentor"],
)
async def get_cockpit(
    request: Request, mentee_id: uuid.UUID, principal: CurrentMentor, session: DbSession
) -> Response:
    body = await mentees_service.cockpit(
        session, mentor_id=principal.user_id, mentee_id=mentee_id, now=datetime.now(UTC))
    return conditional_json(request, body)


@router.get(
    "/api/v1/mentee/me",
    operation_id="get_mentee_home",
    summary="The mentee's own profile, mentor, upcoming sessions and banner state",
    description=("`at_risk` says whether to show the at-risk banner; the reasons and any "
                 "flag notes are never part of the mentee's view."),
    response_model=MenteeHome,
    responses=problem_responses(401, 403, 404),
    tags=["mentee"],
)
async def get_mentee_home(principal: CurrentMentee, session: DbSession) -> MenteeHome:
    return await mentees_service.mentee_home(
        session, mentee_id=principal.user_id, now=datetime.now(UTC))
