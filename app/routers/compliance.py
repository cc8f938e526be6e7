"""Compliance routes (role admin): the audit trail and a user's data export."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from app.core.auth import CurrentAdmin
from app.core.db import DbSession
from app.core.instants import BoundedDatetime
from app.core.problems import problems
from app.core.state import StateDep
from app.schemas.common import Page
from app.schemas.compliance import AuditEntryPublic, UserErased, UserExport
from app.services.compliance import audit, erasure

router = APIRouter(prefix="/api/v1/admin", tags=["compliance"])


@router.get(
    "/audit", operation_id="list_audit", summary="The audit trail, newest first",
    description="Every change to programme data, by anyone (API callers, workers as "
                "`system`, the admin UI), written by the database in the same transaction "
                "as the change. Append-only: no application role can change or delete it; "
                "only retention and erasure do (see the README).",
    response_model=Page[AuditEntryPublic], responses=problems({422: ["invalid_cursor"]}),
)
async def list_audit(
    principal: CurrentAdmin, session: DbSession,
    actor_id: uuid.UUID | None = None,
    target_id: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z-]+$")] = None,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z_.]+$")] = None,
    since: Annotated[BoundedDatetime | None, Query(alias="from")] = None,
    until: Annotated[BoundedDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[AuditEntryPublic]:
    return await audit.list_audit(session, actor_id=actor_id, target_id=target_id,
                                  action=action, since=since, until=until, limit=limit,
                                  cursor=cursor)


@router.get(
    "/users/{user_id}/export", operation_id="export_user",
    summary="Every personal datum held about a user, as one JSON document",
    response_model=UserExport, responses=problems({404: ["not_found"]}),
)
async def export_user(user_id: uuid.UUID, principal: CurrentAdmin,
                      session: DbSession) -> UserExport:
    return await audit.export_user(session, user_id=user_id)


@router.post(
    "/users/{user_id}/erase", operation_id="erase_user",
    summary="Erase a user: pseudonymise, delete free text, end relationships",
    description="In one transaction: the user is deactivated (assignments end, future "
                "sessions are cancelled, tokens stop), name and email are pseudonymised, "
                "free text written by or about them is deleted, and their personal values "
                "become `[erased]` in event payloads and the audit trail; `user.erased` goes "
                "out. Their Redis streams and markers are removed right after. The id stays "
                "as a tombstone: a later upsert of it is 409 `erased`; erasing twice is 409 "
                "`invalid_transition`.",
    response_model=UserErased,
    responses=problems({404: ["not_found"], 409: ["invalid_transition", "concurrent_change"]}),
)
async def erase_user(user_id: uuid.UUID, principal: CurrentAdmin, session: DbSession,
                     state: StateDep, background: BackgroundTasks) -> UserErased:
    erased = await erasure.erase_user(session, principal=principal, user_id=user_id,
                                      video=state.video)
    # After the commit (the transaction commits when the route returns).
    background.add_task(erasure.forget_redis_keys, state.redis, state.settings,
                        user_id=user_id)
    background.add_task(state.identities.forget, user_id)  # tokens stop here at once
    return erased
