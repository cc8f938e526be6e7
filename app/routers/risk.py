"""Flags: mentors raise and resolve them about their mentees; directors see, resolve and
escalate all of them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from app.core.auth import CurrentMentor, CurrentStaff
from app.core.db import DbSession
from app.core.problems import problems
from app.schemas.common import Page
from app.schemas.risk import (
    DirectorFlagUpdate,
    FlagCreate,
    FlagPublic,
    FlagStatus,
    FlagUpdate,
    Severity,
)
from app.services.risk import flags as flag_service

router = APIRouter(prefix="/api/v1")


@router.post(
    "/mentor/flags",
    operation_id="raise_flag",
    summary="Raise a flag about one of your mentees",
    description="Emits `flag.raised` (refresh priority urgent) to every director and the "
                "mentor, with `director_ids`. The note is never shown to the mentee and is "
                "not part of the event.",
    status_code=status.HTTP_201_CREATED,
    response_model=FlagPublic,
    responses=problems({404: ["not_found"]}),
    tags=["mentor workspace"],
)
async def raise_flag(body: FlagCreate, mentor: CurrentMentor, session: DbSession) -> FlagPublic:
    return await flag_service.raise_flag(
        session, mentor_id=mentor.user_id, mentee_id=body.mentee_id, severity=body.severity,
        category=body.category, note=body.note,
    )


@router.patch(
    "/mentor/flags/{flag_id}",
    operation_id="resolve_flag",
    summary="Resolve a flag",
    description="open (or escalated) → resolved, once (a second time is 409 "
                "`invalid_transition`). Emits `flag.resolved`.",
    response_model=FlagPublic,
    responses=problems({404: ["not_found"], 409: ["invalid_transition"]}),
    tags=["mentor workspace"],
)
async def resolve_flag(
    flag_id: uuid.UUID, body: FlagUpdate, mentor: CurrentMentor, session: DbSession
) -> FlagPublic:
    return await flag_service.resolve_flag(
        session, mentor_id=mentor.user_id, flag_id=flag_id, resolution=body.resolution
    )


@router.get(
    "/director/flags",
    operation_id="list_director_flags",
    summary="Every flag, newest first",
    description="Filters combine with AND; repeated values of one filter with OR "
                "(`severity=high&severity=critical`). `status=open` is open and not "
                "escalated; `escalated` is open and escalated by a director.",
    response_model=Page[FlagPublic],
    responses=problems({422: ["invalid_cursor"]}),
    tags=["director"],
)
async def list_flags(
    _: CurrentStaff,
    session: DbSession,
    status_: Annotated[list[FlagStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    mentee_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[FlagPublic]:
    items, next_cursor = await flag_service.list_flags(
        session, status=status_ or (), severity=severity or (), mentee_id=mentee_id,
        limit=limit, cursor=cursor,
    )
    return Page[FlagPublic](items=items, next_cursor=next_cursor)


@router.patch(
    "/director/flags/{flag_id}",
    operation_id="update_director_flag",
    summary="Resolve or escalate a flag",
    description="`resolved`: open or escalated → resolved (`flag.resolved`). `escalated`: "
                "open → escalated (`flag.escalated`, refresh priority urgent, to every "
                "director, the mentee's mentor and whoever raised it; `resolution` may say "
                "why). Any other change: 409 `invalid_transition`.",
    response_model=FlagPublic,
    responses=problems({404: ["not_found"], 409: ["invalid_transition"]}),
    tags=["director"],
)
async def update_flag(
    flag_id: uuid.UUID, body: DirectorFlagUpdate, director: CurrentStaff, session: DbSession
) -> FlagPublic:
    return await flag_service.director_update_flag(
        session, director_id=director.user_id, flag_id=flag_id, status=body.status,
        resolution=body.resolution)
