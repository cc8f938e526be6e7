"""Dashboards: the mentor's dashboard, mentee list and cockpit; the directors' cockpit of any
mentee and list of mentors; the mentee's own home view and review feedback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.core.auth import CurrentMentee, CurrentMentor, CurrentStaff
from app.core.db import DbSession
from app.core.http_cache import conditional_json
from app.core.problems import problems
from app.schemas.common import Page
from app.schemas.dashboard import (
    UTILIZATION_DOC,
    CockpitPublic,
    DashboardPublic,
    MenteeHome,
    MenteeSummary,
    MentorLoadPublic,
    MentorSort,
)
from app.schemas.reviews import MenteeReviewPublic
from app.schemas.risk import RISK_RULES_DOC
from app.services.dashboard import directory as mentor_directory
from app.services.dashboard import mentees as mentees_service
from app.services.dashboard.mentor import build_dashboard
from app.services.workqueue.reviews import list_mentee_reviews

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
    responses={304: NOT_MODIFIED, **problems({404: ["mentor_not_found"]})},
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
    responses=problems({422: ["invalid_cursor"]}),
    tags=["mentor"],
)
async def list_mentees(
    principal: CurrentMentor,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None,
                      Query(max_length=1000, description="From a previous page.")] = None,
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
    responses={304: NOT_MODIFIED, **problems({404: ["mentee_not_found"]})},
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
    responses=problems({404: ["mentee_not_found"]}),
    tags=["mentee"],
)
async def get_mentee_home(principal: CurrentMentee, session: DbSession) -> MenteeHome:
    return await mentees_service.mentee_home(
        session, mentee_id=principal.user_id, now=datetime.now(UTC))


@router.get(
    "/api/v1/mentee/reviews",
    operation_id="list_mentee_reviews",
    summary="The mentee's decided mission reviews, newest first",
    description="Each decided review of the caller's submissions: `submission_id`, "
                "`decision`, `feedback`, `score`, `reviewed_at` (plus the mission and its "
                "title). Pending submissions are not listed.",
    response_model=Page[MenteeReviewPublic],
    responses=problems({422: ["invalid_cursor"]}),
    tags=["mentee"],
)
async def get_mentee_reviews(
    principal: CurrentMentee,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[MenteeReviewPublic]:
    items, next_cursor = await list_mentee_reviews(
        session, mentee_id=principal.user_id, limit=limit, cursor=cursor)
    return Page[MenteeReviewPublic](items=items, next_cursor=next_cursor)


@router.get(
    "/api/v1/director/mentees/{mentee_id}/cockpit",
    operation_id="get_director_mentee_cockpit",
    summary="Everything about any mentee (the mentor cockpit's shape)",
    description=("Profile, current assignment (null while waiting), risk, readiness trend, "
                 "recent and upcoming sessions with any mentor, open work items, flags (with "
                 "notes) and recent submissions with their review. 404 unless the user is a "
                 "mentee."),
    response_model=CockpitPublic,
    responses=problems({404: ["mentee_not_found"]}),
    tags=["director"],
)
async def get_director_cockpit(
    mentee_id: uuid.UUID, _: CurrentStaff, session: DbSession
) -> Response:
    body = await mentees_service.director_cockpit(session, mentee_id=mentee_id,
                                                  now=datetime.now(UTC))
    # Serialised once in pydantic-core (a returned model is dumped, validated again and
    # serialised again by FastAPI); the bytes are the same.
    return Response(body.__pydantic_serializer__.to_json(body), media_type="application/json")


@router.get(
    "/api/v1/director/mentors",
    operation_id="list_director_mentors",
    summary="Every active mentor's load",
    description="Mentees N/max, weekly slots X/total (this ISO week in the mentor's time "
                "zone; a stored zone that is not a valid IANA name counts as UTC), open and "
                "overdue work items. Deactivated mentors are not listed. `sort`: `name` "
                "(default), `-name`, `load` (active mentees / max mentees, least loaded first) "
                "or `-load`; ties by name. Keyset pages: a cursor is valid only with the sort "
                "it came from.",
    response_model=Page[MentorLoadPublic],
    responses=problems({422: ["invalid_cursor"]}),
    tags=["director"],
)
async def list_mentors(
    _: CurrentStaff,
    session: DbSession,
    sort: Annotated[MentorSort, Query()] = "name",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[MentorLoadPublic]:
    items, next_cursor = await mentor_directory.list_mentor_loads(
        session, sort=sort, limit=limit, cursor=cursor
    )
    return Page[MentorLoadPublic](items=items, next_cursor=next_cursor)
