"""Director views (role director or admin): flags, mentor load, manual assignments."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.core.auth import CurrentStaff
from app.core.db import DbSession
from app.models.risk import FlagStatus, Severity
from app.schemas.common import Page, problem_responses
from app.schemas.director import AssignmentCreate, AssignmentPublic, MentorLoadPublic, MentorSort
from app.schemas.risk import FlagPublic
from app.services.dashboard import directory as mentor_directory
from app.services.relationships.assignments import assign_mentee
from app.services.risk import flags as flag_service

router = APIRouter(prefix="/api/v1/director", tags=["director"])

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=1000)]


@router.get(
    "/flags",
    operation_id="list_director_flags",
    summary="Every flag, newest first",
    description="Filters combine with AND; repeated values of one filter with OR "
                "(`severity=high&severity=critical`).",
    response_model=Page[FlagPublic],
    responses=problem_responses(401, 403, 422),
)
async def list_flags(
    _: CurrentStaff,
    session: DbSession,
    status_: Annotated[list[FlagStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    mentee_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[FlagPublic]:
    items, next_cursor = await flag_service.list_flags(
        session, status=status_ or (), severity=severity or (), mentee_id=mentee_id,
        limit=limit, cursor=cursor,
    )
    return Page[FlagPublic](items=items, next_cursor=next_cursor)


@router.get(
    "/mentors",
    operation_id="list_director_mentors",
    summary="Every mentor's load",
    description="Mentees N/max, weekly slots X/total (this ISO week in the mentor's time "
                "zone), open and overdue work items. `sort`: `name` (default), `-name`, "
                "`load` (active mentees / max mentees, least loaded first) or `-load`; ties "
                "by name. Keyset pages: a cursor is valid only with the sort it came from.",
    response_model=Page[MentorLoadPublic],
    responses=problem_responses(401, 403, 422),
)
async def list_mentors(
    _: CurrentStaff,
    session: DbSession,
    sort: Annotated[MentorSort, Query()] = "name",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MentorLoadPublic]:
    items, next_cursor = await mentor_directory.list_mentor_loads(
        session, sort=sort, limit=limit, cursor=cursor
    )
    return Page[MentorLoadPublic](items=items, next_cursor=next_cursor)


@router.post(
    "/assignments",
    operation_id="create_director_assignment",
    summary="Assign or reassign a mentee to a mentor",
    description="201 with the new assignment; a mentee who had another mentor is reassigned "
                "(the old assignment ends with `end_reason` reassigned; `assignment.ended` "
                "and `assignment.created` are emitted). Assigning a mentee to the mentor "
                "they already have changes nothing: 200 with the existing assignment and "
                "`created: false`. 409 `capacity_exceeded` when the mentor already has "
                "`mentor_max_mentees` active mentees (checked under a lock on the mentor). "
                "404 for an unknown mentee or mentor, 422 `not_a_mentor` / `not_a_mentee`.",
    status_code=status.HTTP_201_CREATED,
    response_model=AssignmentPublic,
    responses={200: {"model": AssignmentPublic, "description": "Already assigned to that "
                     "mentor: nothing changed."},
               **problem_responses(401, 403, 404, 409, 422)},
)
async def assign(
    body: AssignmentCreate, director: CurrentStaff, session: DbSession, response: Response
) -> AssignmentPublic:
    result = await assign_mentee(
        session, principal=director, mentee_id=body.mentee_id, mentor_id=body.mentor_id
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result
