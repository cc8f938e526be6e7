"""Assign or reassign a mentee, and what happens to their sessions with the old mentor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.schemas.relationships import AssignmentEnded, AssignmentPublic, SessionsOnReassign
from app.services.relationships import assignments
from app.services.sessions import handover
from app.services.sessions.video import VideoProvider


async def assign_with_sessions(
    session: AsyncSession,
    *,
    principal: Principal | None,
    video: VideoProvider,
    mentee_id: uuid.UUID,
    mentor_id: uuid.UUID,
    sessions: SessionsOnReassign = "cancel",
    now: datetime | None = None,
) -> AssignmentPublic:
    """A director's (re)assignment. For a reassignment, the mentee's future live sessions
    with the old mentor are cancelled (reason `reassigned`) or transferred to the new
    mentor (all or nothing: 409 `transfer_conflict`, and the whole change rolls back)."""
    now = now or datetime.now(UTC)
    change = await assignments.assign_locked(
        session, principal=principal, mentee_id=mentee_id, mentor_id=mentor_id, at=now)
    public = change.public
    if change.previous is None:
        return public
    rows = await handover.future_sessions(session, now=now, mentee_id=mentee_id,
                                          mentor_id=change.previous.mentor_id)
    changed_by = principal.user_id if principal else None
    if sessions == "transfer":
        public.sessions_transferred = await handover.transfer_sessions(
            session, rows, to_mentor=change.mentor, video=video, changed_by=changed_by,
            now=now)
    else:
        public.sessions_cancelled = await handover.cancel_sessions(
            session, rows, reason="reassigned", cancelled_by=changed_by, video=video)
    return public


async def end_with_sessions(
    session: AsyncSession,
    *,
    principal: Principal | None,
    video: VideoProvider,
    assignment_id: uuid.UUID,
    reason: str,
    now: datetime | None = None,
) -> AssignmentEnded:
    """End an assignment; the pair's future live sessions are cancelled."""
    now = now or datetime.now(UTC)
    row = await assignments.end_assignment(session, assignment_id=assignment_id,
                                           reason=reason, at=now)
    rows = await handover.future_sessions(session, now=now, mentee_id=row.mentee_id,
                                          mentor_id=row.mentor_id)
    cancelled = await handover.cancel_sessions(
        session, rows, reason="assignment_ended",
        cancelled_by=principal.user_id if principal else None, video=video)
    return AssignmentEnded(**assignments.history_item(row).model_dump(),
                           sessions_cancelled=cancelled)
