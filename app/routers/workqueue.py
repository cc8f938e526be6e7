"""The mentor's workspace: work queue and mission reviews (role mentor); flags are in
routers/risk.py.

Objects of mentees not actively assigned to the caller answer 404, whether they exist or not.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from app.core.auth import CurrentMentor
from app.core.db import DbSession
from app.core.problems import problems
from app.models.work_item import Priority, WorkItemKind, WorkItemStatus
from app.schemas.reviews import MissionReviewCreate, MissionReviewPublic
from app.schemas.workqueue import WorkItemPublic, WorkItemUpdate, WorkQueuePage
from app.services.workqueue import queue as queue_service
from app.services.workqueue import reviews as review_service

router = APIRouter(prefix="/api/v1/mentor", tags=["mentor workspace"])

WORKQUEUE_DESCRIPTION = """
The caller's work items: those of the mentees actively assigned to them.

**Default:** unfinished items only (`status` open and in_progress); pass `status=done` (or
several `status` values) for others. Filters combine with AND; repeated values of one filter
combine with OR (`kind=mission_review&kind=goal_feedback`).

**Order:** overdue first, then priority (urgent, high, normal, low), then `due_at` (soonest
first), then `id`. An item is overdue when it is unfinished and `due_at` is before `as_of`
(or the SLA sweep marked it); `sla_remaining_minutes` counts whole minutes from `as_of` to
`due_at` (negative once overdue, null for done items).

**Pages:** `limit` 1..200 (default 50); follow `next_cursor` until it is null. The cursor pins
`as_of`, so a walk lists every matching item exactly once even as items become overdue.
"""


@router.get(
    "/workqueue",
    operation_id="list_work_queue",
    summary="The mentor's work queue, most urgent first",
    description=WORKQUEUE_DESCRIPTION,
    response_model=WorkQueuePage,
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_work_queue(
    mentor: CurrentMentor,
    session: DbSession,
    status_: Annotated[list[WorkItemStatus] | None, Query(
        alias="status", description="Default: open and in_progress.")] = None,
    kind: Annotated[list[WorkItemKind] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    overdue: Annotated[bool | None, Query()] = None,
    mentee_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> WorkQueuePage:
    filters = queue_service.WorkQueueFilters(
        status=tuple(dict.fromkeys(status_)) if status_ else queue_service.UNFINISHED,
        kind=tuple(kind or ()), priority=tuple(priority or ()), overdue=overdue,
        mentee_id=mentee_id,
    )
    items, next_cursor, as_of = await queue_service.list_work_queue(
        session, mentor_id=mentor.user_id, filters=filters, limit=limit, cursor=cursor
    )
    return WorkQueuePage(items=items, next_cursor=next_cursor, as_of=as_of)


@router.patch(
    "/workqueue/{item_id}",
    operation_id="update_work_item",
    summary="Start or complete a work item",
    description="open → in_progress → done, or open → done; done is final. Any other change "
                "is 409 `invalid_transition`. Completing emits `workqueue.item_completed`.",
    response_model=WorkItemPublic,
    responses=problems({404: ["not_found"], 409: ["invalid_transition"]}),
)
async def update_work_item(
    item_id: uuid.UUID, body: WorkItemUpdate, mentor: CurrentMentor, session: DbSession
) -> WorkItemPublic:
    return await queue_service.change_item_status(
        session, mentor_id=mentor.user_id, item_id=item_id, status=body.status, note=body.note
    )


@router.post(
    "/missions/{submission_id}/review",
    operation_id="review_mission_submission",
    summary="Review a mentee's mission submission",
    description="Decides the submission (approved, changes_requested or rejected), completes "
                "its `mission_review` work item and emits `mission.reviewed` (refresh "
                "priority high). A submission is reviewed once: a second review is 409 "
                "`already_reviewed`.",
    status_code=status.HTTP_201_CREATED,
    response_model=MissionReviewPublic,
    responses=problems({404: ["not_found"], 409: ["already_reviewed"]}),
)
async def review_mission(
    submission_id: uuid.UUID, body: MissionReviewCreate, mentor: CurrentMentor,
    session: DbSession,
) -> MissionReviewPublic:
    return await review_service.review_submission(
        session, mentor_id=mentor.user_id, submission_id=submission_id,
        decision=body.decision, feedback=body.feedback, score=body.score,
    )
