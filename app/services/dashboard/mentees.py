"""The mentor's mentees (list with risk, cockpit) and the mentee's own home view.

Every mentor query is scoped to the caller's active assignments in SQL as well as by RLS;
a mentee who is not the caller's is a 404, never a hint that they exist.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, case, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.pagination import Keyset
from app.core.text import safe_text
from app.models import (
    Assignment,
    Flag,
    MentoringSession,
    MissionReview,
    MissionSubmission,
    ReadinessRecord,
    User,
    WorkItem,
)
from app.schemas.common import Page
from app.schemas.dashboard import (
    AssignmentSummary,
    CockpitPublic,
    FlagSummary,
    MenteeHome,
    MenteeProfile,
    MenteeSummary,
    MentorSummary,
    NextSession,
    ReadinessPoint,
    RiskSummary,
    SubmissionSummary,
)
from app.schemas.sessions import MentorSessionPublic
from app.services.risk.flags import public_status
from app.services.risk.scoring import mentees_risk, own_at_risk
from app.services.sessions.queries import upcoming_sessions
from app.services.workqueue.queue import PRIORITY_RANK, overdue_expr, to_public

READINESS_POINTS = 30
RECENT_SESSIONS = 10
UPCOMING_SESSIONS = 10
FLAGS_SHOWN = 50
RECENT_SUBMISSIONS = 10
MENTEE_UPCOMING = 10


# --- the mentor's list ----------------------------------------------------------------------

def _mentees_sql(*, after: bool, at_risk: bool | None) -> str:
    where = ["a.mentor_id = :mentor_id", "a.ended_at is null"]
    if after:
        where.append("(u.name, u.id) > (:after_name, :after_id)")
    if at_risk is not None:
        where.append(("" if at_risk else "not ") + "cardinality(risk.reasons) > 0")
    return f"""
        select u.id as mentee_id, u.name, u.email, u.tier, u.timezone,
               a.started_at as assigned_at, risk.reasons, risk.risk_score,
               (select count(*) from work_items w
                 where w.mentee_id = u.id and w.status <> 'done') as open_items,
               ns.id as ns_id, ns.starts_at as ns_starts_at,
               ns.duration_minutes as ns_duration, ns.meeting_url as ns_url
          from assignments a
          join users u on u.id = a.mentee_id
         cross join lateral mentee_risk(array[a.mentee_id], :now) risk
          left join lateral (
            select s.id, s.starts_at, s.duration_minutes, s.meeting_url from sessions s
             where s.mentee_id = u.id and s.mentor_id = :mentor_id
               and s.status = 'scheduled' and s.starts_at > :now
             order by s.starts_at limit 1
          ) ns on true
         where {" and ".join(where)}
         order by u.name, u.id
         limit :limit
    """


MENTEES_CURSOR = Keyset("mentees", safe_text(10_000), uuid.UUID)  # (name, mentee_id)


async def list_mentees(
    session: AsyncSession, *, mentor_id: uuid.UUID, now: datetime, limit: int = 50,
    cursor: str | None = None, at_risk: bool | None = None,
) -> Page[MenteeSummary]:
    """Active mentees by name, each with their risk summary; one statement per page."""
    position = MENTEES_CURSOR.decode(cursor)
    params: dict[str, object] = {"mentor_id": mentor_id, "now": now, "limit": limit + 1}
    if position is not None:
        params.update(after_name=position[0], after_id=position[1])
    sql = text(_mentees_sql(after=position is not None, at_risk=at_risk))
    rows = (await session.execute(sql, params)).all()
    items = [
        MenteeSummary(
            mentee_id=row.mentee_id, name=row.name, email=row.email, tier=row.tier,
            timezone=row.timezone, assigned_at=row.assigned_at, reasons=row.reasons,
            risk_score=row.risk_score, at_risk=bool(row.reasons), open_items=row.open_items,
            next_session=NextSession(id=row.ns_id, starts_at=row.ns_starts_at,
                                     duration_minutes=row.ns_duration, meeting_url=row.ns_url)
            if row.ns_id else None,
        )
        for row in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = MENTEES_CURSOR.encode(last.name, last.mentee_id)
    return Page[MenteeSummary](items=items, next_cursor=next_cursor)


# --- the cockpit ----------------------------------------------------------------------------

def _session(row: MentoringSession) -> MentorSessionPublic:
    return MentorSessionPublic.model_validate(row)


def _profile(user: User) -> MenteeProfile:
    return MenteeProfile(id=user.id, email=user.email, name=user.name, role=user.role,
                         timezone=user.timezone, tier=user.tier, interests=user.interests or [])


async def cockpit(
    session: AsyncSession, *, mentor_id: uuid.UUID, mentee_id: uuid.UUID, now: datetime
) -> CockpitPublic:
    """Everything a mentor needs about one of their mentees. Not theirs: 404."""
    found = (await session.execute(
        select(Assignment, User)
        .join(User, User.id == Assignment.mentee_id)
        .where(Assignment.mentor_id == mentor_id, Assignment.mentee_id == mentee_id,
               Assignment.ended_at.is_(None))
    )).first()
    if found is None:
        raise NotFound("Mentee not found", code="mentee_not_found")
    assignment, mentee = found
    return await _cockpit(session, mentee=mentee, assignment=assignment, mentor_id=mentor_id,
                          now=now)


async def director_cockpit(
    session: AsyncSession, *, mentee_id: uuid.UUID, now: datetime
) -> CockpitPublic:
    """The mentor cockpit's shape for any mentee (directors): sessions with any mentor,
    the active assignment if there is one. 404 unless the user is a mentee."""
    found = (await session.execute(
        select(User, Assignment)
        .outerjoin(Assignment, and_(Assignment.mentee_id == User.id,
                                    Assignment.ended_at.is_(None)))
        .where(User.id == mentee_id, User.role == "mentee"))).first()
    if found is None:
        raise NotFound("Mentee not found", code="mentee_not_found")
    mentee, assignment = found
    return await _cockpit(session, mentee=mentee, assignment=assignment, mentor_id=None,
                          now=now)


async def _cockpit(
    session: AsyncSession, *, mentee: User, assignment: Assignment | None,
    mentor_id: uuid.UUID | None, now: datetime,
) -> CockpitPublic:
    mentee_id = mentee.id
    risk = (await mentees_risk(session, mentee_ids=[mentee_id], now=now))[mentee_id]

    readiness = (await session.scalars(
        select(ReadinessRecord).where(ReadinessRecord.mentee_id == mentee_id)
        .order_by(ReadinessRecord.recorded_at.desc()).limit(READINESS_POINTS)
    )).all()

    with_mentor = [MentoringSession.mentee_id == mentee_id]
    if mentor_id is not None:
        with_mentor.append(MentoringSession.mentor_id == mentor_id)
    # Recent and upcoming in one round trip: two index range scans (each with its own
    # order and limit) under UNION ALL; disjoint by start.
    recent_q = (select(MentoringSession)
                .where(*with_mentor, MentoringSession.starts_at <= now)
                .order_by(MentoringSession.starts_at.desc()).limit(RECENT_SESSIONS))
    upcoming_q = (select(MentoringSession)
                  .where(*with_mentor, MentoringSession.starts_at > now,
                         MentoringSession.status == "scheduled")
                  .order_by(MentoringSession.starts_at).limit(UPCOMING_SESSIONS))
    both = (await session.scalars(select(MentoringSession).from_statement(
        union_all(recent_q, upcoming_q)))).all()
    recent = sorted((s for s in both if s.starts_at <= now),
                    key=lambda s: s.starts_at, reverse=True)
    upcoming = sorted((s for s in both if s.starts_at > now), key=lambda s: s.starts_at)

    # The work queue's order and shape: overdue first, then priority, then due_at.
    items = (await session.scalars(
        select(WorkItem).where(WorkItem.mentee_id == mentee_id, WorkItem.status != "done")
        .order_by(case((overdue_expr(now), 0), else_=1),
                  case(*((WorkItem.priority == p, r) for p, r in PRIORITY_RANK.items())),
                  WorkItem.due_at, WorkItem.id)
    )).all()

    flags = (await session.scalars(
        select(Flag).where(Flag.mentee_id == mentee_id)
        .order_by(case((Flag.status == "open", 0), else_=1), Flag.created_at.desc())
        .limit(FLAGS_SHOWN)
    )).all()

    submissions = (await session.execute(
        select(MissionSubmission, MissionReview)
        .outerjoin(MissionReview, MissionReview.submission_id == MissionSubmission.id)
        .where(MissionSubmission.mentee_id == mentee_id)
        .order_by(MissionSubmission.submitted_at.desc()).limit(RECENT_SUBMISSIONS)
    )).all()

    return CockpitPublic(
        profile=_profile(mentee),
        assignment=AssignmentSummary(id=assignment.id, mentor_id=assignment.mentor_id,
                                     started_at=assignment.started_at,
                                     source=assignment.source, score=assignment.score,
                                     reasons=assignment.reasons or [])
        if assignment is not None else None,
        risk=RiskSummary(reasons=risk.reasons, risk_score=risk.risk_score,
                         at_risk=risk.at_risk),
        readiness_trend=[ReadinessPoint(recorded_at=r.recorded_at, score=r.score,
                                        previous_score=r.previous_score)
                         for r in reversed(readiness)],
        recent_sessions=[_session(s) for s in recent],
        upcoming_sessions=[_session(s) for s in upcoming],
        open_work_items=[to_public(item, mentee_name=mentee.name, at=now) for item in items],
        flags=[FlagSummary(id=f.id, severity=f.severity, category=f.category, note=f.note,
                           status=public_status(f), resolution=f.resolution,
                           raised_by=f.raised_by, created_at=f.created_at,
                           resolved_at=f.resolved_at) for f in flags],
        recent_submissions=[
            SubmissionSummary(
                id=sub.id, mission_id=sub.mission_id, title=sub.title, url=sub.url,
                submitted_at=sub.submitted_at, status=sub.status,
                decision=review.decision if review else None,
                review_score=review.score if review else None,
                reviewed_at=review.created_at if review else None,
            )
            for sub, review in submissions
        ],
        generated_at=now,
    )


# --- the mentee's own view ------------------------------------------------------------------

async def mentee_home(
    session: AsyncSession, *, mentee_id: uuid.UUID, now: datetime
) -> MenteeHome:
    """Own profile, current mentor, upcoming sessions and the banner state. The risk
    reasons and flags stay out of reach: RLS hides them and the banner is one boolean."""
    me = await session.scalar(select(User).where(User.id == mentee_id))
    if me is None:
        raise NotFound("No profile for this user", code="mentee_not_found")
    mentor = await session.scalar(
        select(User).join(Assignment, Assignment.mentor_id == User.id)
        .where(Assignment.mentee_id == mentee_id, Assignment.ended_at.is_(None))
    )
    upcoming = await upcoming_sessions(session, mentee_id=mentee_id, limit=MENTEE_UPCOMING,
                                       now=now)
    return MenteeHome(
        profile=_profile(me),
        mentor=MentorSummary(id=mentor.id, name=mentor.name,
                             specialties=mentor.mentor_specialties or [],
                             timezone=mentor.timezone) if mentor else None,
        upcoming_sessions=upcoming,
        at_risk=await own_at_risk(session),
    )
