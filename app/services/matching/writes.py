"""What a run or a publish writes, set-based (NumPy-free: the API's publish uses it too).

Assignments and their `assignment.created` events go in one statement: the events are made
from the rows really inserted (a mentee assigned meanwhile is skipped by the partial unique
index and gets no event), with the outbox's shared set-based emitter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.outbox import insert_events_sql, sql_rfc3339

# Any constant bigint, the same for every matcher run and publish (pg_advisory_xact_lock).
MATCHER_LOCK_KEY = 0x6D656E746F72  # "mentor"
REASON_SEPARATOR = "\x1f"  # joins an assignment's reasons for the bulk insert
ID_LIST = ARRAY(UUID(as_uuid=True))


def assignment_events_sql(source: str) -> str:
    """The `assignment.created` events of the auto assignments in `source` (a CTE of
    inserted rows: id, mentee_id, mentor_id, score, reasons, started_at)."""
    return insert_events_sql(
        type="assignment.created",
        data=f'''jsonb_build_object(
            'assignment_id', i.id, 'mentee_id', i.mentee_id, 'mentor_id', i.mentor_id,
            'source', 'auto', 'score', i.score, 'reasons', to_jsonb(i.reasons),
            'previous_mentor_id', null, 'started_at', {sql_rfc3339("i.started_at")})''',
        recipients="array[i.mentee_id, i.mentor_id]",
        source=f"{source} i",
    )


_INSERT_ASSIGNMENTS = text(f"""
with inserted as (
    insert into assignments (id, mentee_id, mentor_id, source, score, reasons, assigned_by,
                             started_at)
    select t.id, t.mentee_id, t.mentor_id, 'auto', t.score,
           string_to_array(t.reasons, chr({ord(REASON_SEPARATOR)})), :assigned_by, :now
      from unnest(cast(:ids as uuid[]), cast(:mentee_ids as uuid[]),
                  cast(:mentor_ids as uuid[]), cast(:scores as float8[]),
                  cast(:reasons as text[])) as t(id, mentee_id, mentor_id, score, reasons)
        on conflict (mentee_id) where ended_at is null do nothing
    returning id, mentee_id, mentor_id, score, reasons, started_at
),
events as (
    {assignment_events_sql("inserted")}
)
select mentee_id from inserted
""").bindparams(bindparam("assigned_by", type_=UUID(as_uuid=True)))

_OVER_CAPACITY = text("""
    select a.mentor_id
      from assignments a join users u on u.id = a.mentor_id
     where a.ended_at is null and a.mentor_id = any(:mentor_ids)
     group by a.mentor_id, u.mentor_max_mentees
    having count(*) > u.mentor_max_mentees
""").bindparams(bindparam("mentor_ids", type_=ID_LIST))


async def insert_assignments(
    session: AsyncSession, *, at: datetime, mentee_ids: Sequence[uuid.UUID],
    mentor_ids: Sequence[uuid.UUID], scores: Sequence[float],
    reasons: Sequence[Sequence[str]], assigned_by: uuid.UUID | None = None,
) -> set[uuid.UUID]:
    """Insert auto assignments (and their events); returns the mentees really assigned.
    Refuses (raises) if any mentor touched would exceed `mentor_max_mentees`: only
    possible if some writer skipped the mentor-row lock."""
    if not mentee_ids:
        return set()
    result = await session.execute(_INSERT_ASSIGNMENTS, {
        "now": at, "assigned_by": assigned_by,
        "ids": [uuid.uuid4() for _ in mentee_ids],
        "mentee_ids": list(mentee_ids), "mentor_ids": list(mentor_ids),
        "scores": list(scores),
        "reasons": [REASON_SEPARATOR.join(r) for r in reasons],
    })
    inserted = set(result.scalars())
    await check_capacity(session, list({m for e, m in zip(mentee_ids, mentor_ids, strict=True)
                                        if e in inserted}))
    return inserted


async def check_capacity(session: AsyncSession, mentor_ids: list[uuid.UUID]) -> None:
    """Raise if any of these mentors (given places just now) has more active mentees than
    `mentor_max_mentees`: only possible if some writer skipped the mentor-row lock."""
    if mentor_ids:
        over = (await session.scalars(_OVER_CAPACITY, {"mentor_ids": mentor_ids})).all()
        if over:
            raise RuntimeError(f"matching would exceed mentor_max_mentees for {over[:5]}")


_INSERT_PROPOSALS = text(f"""
insert into matching_proposals (run_id, mentee_id, mentor_id, fit, specialty, timezone, load,
                                language, preference, reasons)
select :run_id, t.mentee_id, t.mentor_id, t.fit, t.specialty, t.timezone, t.load, t.language,
       t.preference, string_to_array(t.reasons, chr({ord(REASON_SEPARATOR)}))
  from unnest(cast(:mentee_ids as uuid[]), cast(:mentor_ids as uuid[]),
              cast(:fit as float8[]), cast(:specialty as float8[]),
              cast(:timezone as float8[]), cast(:load as float8[]),
              cast(:language as float8[]), cast(:preference as float8[]),
              cast(:reasons as text[]))
       as t(mentee_id, mentor_id, fit, specialty, timezone, load, language, preference,
            reasons)
""")


async def insert_proposals(
    session: AsyncSession, *, run_id: uuid.UUID, mentee_ids: Sequence[uuid.UUID],
    mentor_ids: Sequence[uuid.UUID], fits: Sequence[float],
    components: dict[str, Sequence[float]], reasons: Sequence[Sequence[str]],
) -> None:
    if not mentee_ids:
        return
    await session.execute(_INSERT_PROPOSALS, {
        "run_id": run_id, "mentee_ids": list(mentee_ids), "mentor_ids": list(mentor_ids),
        "fit": list(fits), **{k: list(v) for k, v in components.items()},
        "reasons": [REASON_SEPARATOR.join(r) for r in reasons],
    })
