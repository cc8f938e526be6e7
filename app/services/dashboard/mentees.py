"""The mentor's mentees (list with risk, cockpit) and the mentee's own home view.

Every mentor query is scoped to the caller's active assignments in SQL as well as by RLS;
a mentee who is not the caller's is a 404, never a hint that they exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.core.pagination import Keyset
from app.core.sql import DriverQuery
from app.core.text import OutputText, safe_text
from app.models import Assignment, User
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
from app.services.risk.scoring import own_at_risk
from app.services.sessions.queries import upcoming_sessions
from app.services.workqueue.queue import PRIORITY_RANK, to_public

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
# One statement (one round trip, one prepared statement per variant) whatever the mentee has:
# the profile and the active assignment, the risk (`mentee_risk` inlined for this one
# mentee), and each list as a JSON array built by Postgres from its own index range scan
# (LIMIT inside, so a mentee's long history costs nothing). Rendered as in the Python
# models: instants as UTC RFC 3339 text (whatever the session's TimeZone), the rules
# (`overdue`, `sla_remaining_minutes`, a flag's public status) applied in Python by the
# same functions as elsewhere.
# `array[u.id]`, not a `uuid[]` parameter: the planner then knows the risk function sees
# one row, the prepared statement's generic plan costs what a custom one does and Postgres
# keeps it (plan_cache_mode auto). With an array parameter it re-planned the inlined,
# RLS-expanded function at every execution: 15-25 ms of planning for 1 ms of execution.
# Ties in a list's order are broken by id (in the scan and in the aggregate alike).

_RFC3339 = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""


def _json_object(**fields: str) -> str:
    return "json_build_object(" + ", ".join(f"'{k}', {v}" for k, v in fields.items()) + ")"


def _columns(alias: str, names: str, *, instants: str = "") -> dict[str, str]:
    columns = {name: f"{alias}.{name}" for name in names.split()}
    columns.update({name: f"to_char({alias}.{name} at time zone 'UTC', {_RFC3339})"
                    for name in instants.split()})
    return columns


_READINESS_JSON = _json_object(**_columns("r", "score previous_score",
                                          instants="recorded_at"))
_SESSION_JSON = _json_object(**_columns(
    "s", "id mentor_id mentee_id duration_minutes status meeting_url agenda cancel_reason "
         "sequence mentor_notes", instants="starts_at ends_at created_at updated_at"))
_WORK_ITEM_JSON = _json_object(**_columns(
    "w", "id kind priority status mentee_id title details overdue note completed_by",
    instants="due_at created_at started_at completed_at"))
_FLAG_JSON = _json_object(**_columns(
    "f", "id severity category note status resolution raised_by",
    instants="created_at resolved_at escalated_at"))
_SUBMISSION_JSON = _json_object(**_columns(
    "x", "id mission_id title url status decision review_score",
    instants="submitted_at reviewed_at"))
# The work queue's order (`overdue_expr`, then PRIORITY_RANK, due_at, id).
_PRIORITY_RANK_SQL = ("case w.priority "
                      + " ".join(f"when '{p}' then {r}" for p, r in PRIORITY_RANK.items())
                      + " end")


def _cockpit_sql(*, mentor: bool) -> str:
    # Sessions: a mentor's cockpit shows theirs only; a director's, any mentor's.
    with_mentor = "and s.mentor_id = :mentor_id" if mentor else ""
    if mentor:  # an active mentee of the caller's, whatever the user's role
        source = "assignments a join users u on u.id = a.mentee_id"
        where = "a.mentor_id = :mentor_id and a.mentee_id = :mentee_id and a.ended_at is null"
    else:  # any mentee, with their active assignment if any
        source = "users u left join assignments a on a.mentee_id = u.id and a.ended_at is null"
        where = "u.id = :mentee_id and u.role = 'mentee'"
    return f"""
    select u.id, u.email, u.name, u.role, u.timezone, u.tier, u.interests,
           a.id as assignment_id, a.mentor_id, a.started_at, a.source, a.score,
           a.reasons as assignment_reasons, risk.reasons, risk.risk_score,
           (select coalesce(json_agg({_READINESS_JSON} order by r.recorded_at, r.id), '[]')
              from (select * from readiness_history r where r.mentee_id = u.id
                     order by r.recorded_at desc, r.id desc limit {READINESS_POINTS}) r
           )::text as readiness,
           (select coalesce(json_agg({_SESSION_JSON} order by s.starts_at desc, s.id desc),
                            '[]')
              from (select * from sessions s where s.mentee_id = u.id {with_mentor}
                       and s.starts_at <= :now
                     order by s.starts_at desc, s.id desc limit {RECENT_SESSIONS}) s
           )::text as recent_sessions,
           (select coalesce(json_agg({_SESSION_JSON} order by s.starts_at, s.id), '[]')
              from (select * from sessions s where s.mentee_id = u.id {with_mentor}
                       and s.starts_at > :now and s.status = 'scheduled'
                     order by s.starts_at, s.id limit {UPCOMING_SESSIONS}) s
           )::text as upcoming_sessions,
           (select coalesce(json_agg({_WORK_ITEM_JSON} order by w.overdue_rank,
                                     w.priority_rank, w.due_at, w.id), '[]')
              from (select w.*,
                           case when w.overdue or w.due_at < coalesce(w.completed_at, :now)
                                then 0 else 1 end as overdue_rank,
                           {_PRIORITY_RANK_SQL} as priority_rank
                      from work_items w where w.mentee_id = u.id and w.status <> 'done') w
           )::text as open_work_items,
           (select coalesce(json_agg({_FLAG_JSON} order by f.open_rank, f.created_at desc,
                                     f.id), '[]')
              from (select f.*, case when f.status = 'open' then 0 else 1 end as open_rank
                      from flags f where f.mentee_id = u.id
                     order by open_rank, f.created_at desc, f.id limit {FLAGS_SHOWN}) f
           )::text as flags,
           (select coalesce(json_agg({_SUBMISSION_JSON} order by x.submitted_at desc,
                                     x.id desc), '[]')
              from (select sub.id, sub.mission_id, sub.title, sub.url, sub.submitted_at,
                           sub.status, rv.decision, rv.score as review_score,
                           rv.created_at as reviewed_at
                      from mission_submissions sub
                      left join mission_reviews rv on rv.submission_id = sub.id
                     where sub.mentee_id = u.id
                     order by sub.submitted_at desc, sub.id desc
                     limit {RECENT_SUBMISSIONS}) x
           )::text as recent_submissions
      from {source}
     cross join lateral mentee_risk(array[u.id], :now) risk
     where {where}
    """


_MENTOR_COCKPIT = DriverQuery(text(_cockpit_sql(mentor=True)))
_DIRECTOR_COCKPIT = DriverQuery(text(_cockpit_sql(mentor=False)))


@dataclass(frozen=True, slots=True)
class _WorkItemRow:
    """A work item's columns as the cockpit reads them (what `to_public` takes)."""

    id: uuid.UUID
    kind: OutputText
    priority: OutputText
    status: OutputText
    mentee_id: uuid.UUID
    title: OutputText
    details: dict
    due_at: datetime
    overdue: bool
    note: OutputText | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    completed_by: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class _FlagRow:
    """A flag's columns as the cockpit reads them (what `public_status` takes)."""

    id: uuid.UUID
    severity: OutputText
    category: OutputText
    note: OutputText | None
    status: OutputText
    resolution: OutputText | None
    raised_by: uuid.UUID
    created_at: datetime
    resolved_at: datetime | None
    escalated_at: datetime | None


# Parsed straight from Postgres' JSON text in pydantic-core (the lists come as `text`: a
# `json` column would be decoded by the driver's codec first, then validated object by
# object).
_READINESS = TypeAdapter(list[ReadinessPoint])
_SESSIONS = TypeAdapter(list[MentorSessionPublic])
_WORK_ITEMS = TypeAdapter(list[_WorkItemRow])
_FLAGS = TypeAdapter(list[_FlagRow])
_SUBMISSIONS = TypeAdapter(list[SubmissionSummary])


def _profile(field: Callable[[str], Any]) -> MenteeProfile:
    """From the user's fields by name: a cockpit record's (`row.__getitem__`) or a `User`'s
    (`partial(getattr, user)`)."""
    return MenteeProfile(id=field("id"), email=field("email"), name=field("name"),
                         role=field("role"), timezone=field("timezone"), tier=field("tier"),
                         interests=field("interests") or [])


async def cockpit(
    session: AsyncSession, *, mentor_id: uuid.UUID, mentee_id: uuid.UUID, now: datetime
) -> CockpitPublic:
    """Everything a mentor needs about one of their mentees. Not theirs: 404."""
    row = await _MENTOR_COCKPIT.fetchrow(session, {
        "mentor_id": mentor_id, "mentee_id": mentee_id, "now": now})
    return _cockpit(row, now=now)


async def director_cockpit(
    session: AsyncSession, *, mentee_id: uuid.UUID, now: datetime
) -> CockpitPublic:
    """The mentor cockpit's shape for any mentee (directors): sessions with any mentor,
    the active assignment if there is one. 404 unless the user is a mentee."""
    row = await _DIRECTOR_COCKPIT.fetchrow(session, {"mentee_id": mentee_id, "now": now})
    return _cockpit(row, now=now)


def _cockpit(row, *, now: datetime) -> CockpitPublic:
    """The cockpit from its statement's one row (an asyncpg record: DriverQuery)."""
    if row is None:
        raise NotFound("Mentee not found", code="mentee_not_found")
    reasons = list(row["reasons"])
    return CockpitPublic(
        profile=_profile(row.__getitem__),
        assignment=AssignmentSummary(id=row["assignment_id"], mentor_id=row["mentor_id"],
                                     started_at=row["started_at"], source=row["source"],
                                     score=row["score"],
                                     reasons=row["assignment_reasons"] or [])
        if row["assignment_id"] is not None else None,
        risk=RiskSummary(reasons=reasons, risk_score=row["risk_score"], at_risk=bool(reasons)),
        readiness_trend=_READINESS.validate_json(row["readiness"]),
        recent_sessions=_SESSIONS.validate_json(row["recent_sessions"]),
        upcoming_sessions=_SESSIONS.validate_json(row["upcoming_sessions"]),
        open_work_items=[to_public(item, mentee_name=row["name"], at=now)
                         for item in _WORK_ITEMS.validate_json(row["open_work_items"])],
        flags=[FlagSummary(id=f.id, severity=f.severity, category=f.category, note=f.note,
                           status=public_status(f), resolution=f.resolution,
                           raised_by=f.raised_by, created_at=f.created_at,
                           resolved_at=f.resolved_at)
               for f in _FLAGS.validate_json(row["flags"])],
        recent_submissions=_SUBMISSIONS.validate_json(row["recent_submissions"]),
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
        profile=_profile(partial(getattr, me)),
        mentor=MentorSummary(id=mentor.id, name=mentor.name,
                             specialties=mentor.mentor_specialties or [],
                             timezone=mentor.timezone) if mentor else None,
        upcoming_sessions=upcoming,
        at_risk=await own_at_risk(session),
    )
