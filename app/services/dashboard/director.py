"""The directors' live view: what `GET /api/v1/director/stream` opens with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Flag
from app.models.risk import SEVERITIES
from app.schemas.dashboard import DirectorSnapshot
from app.services.ops.metrics import metrics_public, stored_programme_metrics
from app.services.relationships.waiting import waiting_count


async def director_snapshot(session: AsyncSession, *, now: datetime) -> DirectorSnapshot:
    """The programme metrics (as last computed), unresolved flags by severity (an
    index-only scan of the open flags) and how many mentees are waiting (of the partial
    waiting index)."""
    rows = (await session.execute(
        select(Flag.severity, func.count(), func.count(Flag.escalated_at))
        .where(Flag.status == "open").group_by(Flag.severity))).all()
    by_severity = dict.fromkeys(SEVERITIES, 0)
    escalated = 0
    for severity, count, escalated_count in rows:
        by_severity[severity] = count
        escalated += escalated_count
    return DirectorSnapshot(
        metrics=metrics_public(await stored_programme_metrics(session)),
        open_flags=by_severity, escalated_flags=escalated,
        waiting_mentees=await waiting_count(session), generated_at=now)
