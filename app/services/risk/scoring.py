"""Which mentees are slipping, and why.

The rules live in ONE place: the SQL function `mentee_risk(ids uuid[], as_of)` created by
migration 0006. Mentors call it with their own rights (RLS: only their active mentees'
rows); the mentee's banner calls `mentee_at_risk()`, a SECURITY DEFINER wrapper over the
same function that returns a single boolean about the caller. The constants below describe
those rules for the API documentation and the tests, which check every threshold edge
against the SQL, so the two cannot drift apart unnoticed.

The function is a plain `LANGUAGE sql STABLE` set-returning function, which Postgres
inlines into the calling query: `assignments a cross join lateral mentee_risk(array[a.mentee_id])`
evaluates every mentee of a mentor in one set-based statement (index lookups per mentee,
no per-mentee round trips).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.risk import RISK_REASONS

# Stable reason strings, in the order they are listed.
REASONS = RISK_REASONS
(OPEN_FLAG, NO_SHOW_LAST_SESSION, READINESS_DROP, OVERDUE_WORK, HABIT_STREAK_BROKEN,
 NO_RECENT_SESSION) = REASONS

# Thresholds (mirrored by the SQL function of migration 0006).
HABIT_WINDOW = timedelta(days=7)
READINESS_WINDOW = timedelta(days=14)
READINESS_DROP_POINTS = 10
NO_SESSION_WINDOW = timedelta(days=21)

# Weights: risk_score = sum over the mentee's reasons, capped at 100.
FLAG_WEIGHTS = {"low": 15, "medium": 25, "high": 40, "critical": 60}
WEIGHTS = {NO_SHOW_LAST_SESSION: 20, READINESS_DROP: 20, OVERDUE_WORK: 15,
           HABIT_STREAK_BROKEN: 15, NO_RECENT_SESSION: 15}
MAX_SCORE = 100


# Every active mentee of a mentor with their risk, in one statement.
MENTOR_RISK_SQL = """
    select a.mentee_id, r.reasons, r.risk_score
      from assignments a
     cross join lateral mentee_risk(array[a.mentee_id], :now) r
     where a.mentor_id = :mentor_id and a.ended_at is null
"""


@dataclass(frozen=True, slots=True)
class MenteeRisk:
    mentee_id: uuid.UUID
    reasons: list[str]
    risk_score: int

    @property
    def at_risk(self) -> bool:
        return bool(self.reasons)


_MENTEES_RISK = text(
    "select mentee_id, reasons, risk_score from mentee_risk(:ids, :now)"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def mentor_risk(
    session: AsyncSession, *, mentor_id: uuid.UUID, now: datetime
) -> dict[uuid.UUID, MenteeRisk]:
    """Risk of every active mentee of `mentor_id`, in one query."""
    rows = await session.execute(text(MENTOR_RISK_SQL), {"mentor_id": mentor_id, "now": now})
    return {row.mentee_id: MenteeRisk(row.mentee_id, list(row.reasons), row.risk_score)
            for row in rows}


async def mentees_risk(
    session: AsyncSession, *, mentee_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, MenteeRisk]:
    """Risk of the given mentees, in one query. Under RLS, reasons come only from rows the
    caller may see: call it for the caller's own mentees."""
    rows = await session.execute(_MENTEES_RISK, {"ids": mentee_ids, "now": now})
    return {row.mentee_id: MenteeRisk(row.mentee_id, list(row.reasons), row.risk_score)
            for row in rows}


async def own_at_risk(session: AsyncSession) -> bool:
    """The calling mentee's banner state (SECURITY DEFINER function: a boolean, nothing
    else, and only about the caller)."""
    return bool(await session.scalar(text("select mentee_at_risk()")))
