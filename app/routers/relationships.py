"""Relationships (director or admin): assignments, their end and history, the waiting list;
user deactivation (service or admin)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status

from app.core.auth import CurrentService, CurrentStaff
from app.core.db import DbSession
from app.core.problems import problems
from app.core.state import StateDep
from app.routers.sessions.booking import Video
from app.schemas.common import Page
from app.schemas.relationships import (
    AssignmentCreate,
    AssignmentEnd,
    AssignmentEnded,
    AssignmentHistoryItem,
    AssignmentPublic,
    UserDeactivated,
    WaitingMentee,
)
from app.services.programme import lifecycle, reassign
from app.services.relationships import assignments, waiting

# Tags per route: a router-level tag would list the service's route under two headings.
router = APIRouter(prefix="/api/v1")

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=1000)]


@router.post(
    "/director/assignments",
    tags=["relationships"],
    operation_id="create_director_assignment",
    summary="Assign or reassign a mentee to a mentor",
    description="201 with the new assignment; a mentee who had another mentor is reassigned "
                "(the old assignment ends with `end_reason` reassigned; `assignment.ended` "
                "and `assignment.created` are emitted). `sessions` says what happens to the "
                "mentee's future live sessions with the old mentor: `cancel` (default; "
                "`session.cancelled`, reason `reassigned`) or `transfer` (same time, moved to "
                "the new mentor with a new meeting link, `session.rescheduled` to the old "
                "mentor, the new mentor and the mentee), under every booking rule of the new "
                "mentor except minimum notice; if any one cannot move, 409 "
                "`transfer_conflict` lists each conflict and nothing changes. Assigning a "
                "mentee to the mentor they already have changes nothing: 200 with "
                "`created: false`. 409 `capacity_exceeded` when the mentor already has "
                "`mentor_max_mentees` active mentees, `user_inactive` for a deactivated "
                "mentee or mentor. 404 for an unknown mentee or mentor, 422 `not_a_mentor` / "
                "`not_a_mentee`.",
    status_code=status.HTTP_201_CREATED,
    response_model=AssignmentPublic,
    responses={200: {"model": AssignmentPublic, "description": "Already assigned to that "
                     "mentor: nothing changed."},
               **problems({
                   404: ["not_found"],
                   409: ["already_assigned", "capacity_exceeded", "user_inactive",
                         "transfer_conflict", "concurrent_change"],
                   422: ["not_a_mentee", "not_a_mentor"],
                   503: ["video_provider_unavailable"]})},
)
async def assign(
    body: AssignmentCreate, director: CurrentStaff, session: DbSession, response: Response,
    video: Video,
) -> AssignmentPublic:
    result = await reassign.assign_with_sessions(
        session, principal=director, video=video, mentee_id=body.mentee_id,
        mentor_id=body.mentor_id, sessions=body.sessions)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.post(
    "/director/assignments/{assignment_id}/end",
    tags=["relationships"],
    operation_id="end_director_assignment",
    summary="End an assignment",
    description="The assignment ends (`ended_at`, `end_reason` = `reason`); the pair's future "
                "live sessions are cancelled (reason `assignment_ended`); `assignment.ended` "
                "goes out and the mentee joins the waiting list. Ending an ended assignment: "
                "409 `invalid_transition`; unknown: 404.",
    response_model=AssignmentEnded,
    responses=problems({404: ["not_found"], 409: ["invalid_transition"]}),
)
async def end_assignment(
    assignment_id: uuid.UUID, body: AssignmentEnd, director: CurrentStaff,
    session: DbSession, video: Video,
) -> AssignmentEnded:
    return await reassign.end_with_sessions(
        session, principal=director, video=video, assignment_id=assignment_id,
        reason=body.reason)


@router.get(
    "/director/mentees/{mentee_id}/assignments",
    tags=["relationships"],
    operation_id="list_mentee_assignments",
    summary="A mentee's assignment history, newest first",
    response_model=Page[AssignmentHistoryItem],
    responses=problems({404: ["mentee_not_found"], 422: ["invalid_cursor"]}),
)
async def assignment_history(
    mentee_id: uuid.UUID, _: CurrentStaff, session: DbSession, limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AssignmentHistoryItem]:
    items, next_cursor = await assignments.assignment_history(
        session, mentee_id=mentee_id, limit=limit, cursor=cursor)
    return Page[AssignmentHistoryItem](items=items, next_cursor=next_cursor)


@router.get(
    "/director/waiting",
    tags=["relationships"],
    operation_id="list_waiting_mentees",
    summary="Mentees with no active assignment, longest waiting first",
    description="Active mentees without a mentor, ordered by `waiting_since` (then id), with "
                "why the latest finished matcher run did not place them "
                "(`last_match_reason`).",
    response_model=Page[WaitingMentee],
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_waiting(
    _: CurrentStaff, session: DbSession, limit: Limit = 50, cursor: Cursor = None,
) -> Response:
    items, next_cursor = await waiting.list_waiting_json(session, limit=limit, cursor=cursor)
    # The items as Postgres wrote them: the bytes `Page[WaitingMentee]` would serialise
    # (app/services/relationships/waiting.py), without parsing 50 objects to write them again.
    body = f'{{"items":{items},"next_cursor":{json.dumps(next_cursor)}}}'
    return Response(body.encode(), media_type="application/json")


@router.post(
    "/users/{user_id}/deactivate",
    operation_id="deactivate_user",
    summary="Deactivate a user (service or admin)",
    description="The user stops being active: their active assignment (as a mentee) and "
                "their mentees' assignments (as a mentor) end (`assignment.ended`, reason "
                "`deactivated`), their future live sessions are cancelled "
                "(`session.cancelled`), `user.deactivated` goes out and their tokens stop "
                "working (within `AUTH_CACHE_SECONDS` on every replica). Deactivating an "
                "inactive user changes nothing (`changed: false`). `user.upserted` (or PUT "
                "/api/v1/users/{user_id}) with `\"active\": true` brings them back without "
                "relationships.",
    response_model=UserDeactivated,
    responses=problems({404: ["not_found"], 409: ["concurrent_change"]}),
    tags=["service"],
)
async def deactivate_user(
    user_id: uuid.UUID, principal: CurrentService, session: DbSession, video: Video,
    state: StateDep, background: BackgroundTasks,
) -> UserDeactivated:
    result = await lifecycle.deactivate_user(session, principal=principal, user_id=user_id,
                                             video=video)
    # After the commit (background tasks run after the response): this process stops
    # honouring the user's tokens at once; other replicas within AUTH_CACHE_SECONDS.
    background.add_task(state.identities.forget, user_id)
    return result
