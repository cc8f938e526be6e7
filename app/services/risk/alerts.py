"""`risk.raised`: a live event when an inbound signal makes a mentee newly at risk.

Ingestion runs as the service account, which RLS keeps from flags and sessions, so the
reasons come from `ingest_mentee_risk()` (migration 0011, SECURITY DEFINER over the one
SQL definition of risk, `mentee_risk`). "Newly" means: no reason before the signal was
stored, at least one after (a mentee already at risk raises nothing more). The event goes
to the mentee's mentor and every director, never to the mentee (reasons are not theirs to
see).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.outbox import active_mentor_id, emit

_RISK = text("select reasons, risk_score from ingest_mentee_risk(:mentee_id, :as_of)")


async def risk_now(session: AsyncSession, *, mentee_id: uuid.UUID,
                   as_of: datetime) -> tuple[list[str], int]:
    row = (await session.execute(_RISK, {"mentee_id": mentee_id, "as_of": as_of})).first()
    return (list(row.reasons), row.risk_score) if row else ([], 0)


async def raise_if_newly_at_risk(
    session: AsyncSession, *, mentee_id: uuid.UUID, before: list[str], as_of: datetime,
    cause: str,
) -> bool:
    """Emit `risk.raised` if the mentee had no risk reason `before` and has one now."""
    if before:
        return False
    reasons, score = await risk_now(session, mentee_id=mentee_id, as_of=as_of)
    if not reasons:
        return False
    mentor_id = await active_mentor_id(session, mentee_id)
    await emit(session, type="risk.raised",
               data={"mentee_id": mentee_id, "mentor_id": mentor_id, "reasons": reasons,
                     "risk_score": score, "cause": cause, "raised_at": as_of},
               recipients=[mentor_id], occurred_at=as_of)
    return True
