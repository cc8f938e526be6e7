"""The transactional outbox: outbound events are rows written in the caller's transaction.

The relay (app/services/events/relay.py, run by the workers) publishes committed rows to the
recipients' Redis streams and to webhooks; nothing is sent before the change commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Assignment, OutboxEvent
from app.schemas.event_data import OUTBOUND_DATA

log = structlog.get_logger("app.core.outbox")
SOURCE = "mentorship"

# How fast the student dashboard and other consumers should refresh on each event.
REFRESH_PRIORITY: dict[str, str] = {
    "assignment.created": "high",
    "assignment.ended": "high",
    "session.scheduled": "high",
    "session.rescheduled": "high",
    "session.cancelled": "high",
    "session.completed": "normal",
    "session.reminder": "normal",
    "mission.reviewed": "high",  # readiness and portfolio update downstream
    "flag.raised": "urgent",  # at-risk banner and director notification
    "flag.resolved": "normal",
    "workqueue.item_created": "normal",
    "workqueue.item_overdue": "high",
    "workqueue.item_completed": "normal",
    "capacity.exceeded": "high",
    "matching.run_finished": "normal",  # to directors: a run or dry run ended
    # v2
    "flag.escalated": "urgent",  # a director escalated a flag
    "risk.raised": "high",  # a mentee newly at risk
    "workqueue.item_escalated": "high",  # the SLA sweep raised an item's priority
    "user.deactivated": "high",
    "user.erased": "normal",  # downstream services erase their copies
}

# Events every (active) director receives on their stream besides the users they concern
# (the director stream's live view: CONTRACT.md v2 `GET /api/v1/director/stream`).
DIRECTOR_EVENTS = frozenset({
    "assignment.created", "assignment.ended", "capacity.exceeded", "flag.raised",
    "flag.resolved", "flag.escalated", "risk.raised", "matching.run_finished",
})


async def emit(
    session: AsyncSession,
    *,
    type: str,
    data: dict[str, Any],
    recipients: Iterable[uuid.UUID | None] = (),
    occurred_at: datetime | None = None,
) -> uuid.UUID:
    """Write one outbound event in the current transaction and return its id.

    `recipients` are the users whose real-time stream gets the event (None entries, e.g. a
    mentee without a mentor, are dropped). Through `outbox_emit()` (migration 0017): API
    identities may not insert outbox rows themselves, and a mentee or mentor may address
    only their own relationships and directors.
    """
    event_id = uuid.uuid4()
    if type in DIRECTOR_EVENTS:
        recipients = [*recipients, *await director_ids(session)]
    await emit_many(session, [OutboundEvent(type, data, recipients, occurred_at, event_id)])
    return event_id


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    type: str
    data: dict[str, Any]
    recipients: Iterable[uuid.UUID | None] = ()
    occurred_at: datetime | None = None
    id: uuid.UUID | None = None


def _check_data(event: OutboundEvent) -> None:
    """The data as its type's model documents it (app/schemas/event_data.py, the catalogue's
    payload schema). A mismatch is logged, not raised: a documentation drift must not fail
    the booking that emits it; the tests fail on it (tests/conftest.py checks the outbox)."""
    try:
        OUTBOUND_DATA[event.type].model_validate(event.data)
    except ValidationError as error:
        log.error("outbound_data_undocumented", type=event.type,
                  errors=error.errors(include_url=False, include_input=False))


def outbox_rows(events: Sequence[OutboundEvent]) -> list[dict[str, Any]]:
    """The `outbox_emit()` arguments of each event (data checked against its documented model,
    JSON-ready), for `emit_many` and for statements that emit in the same round trip as
    their change (`create_work_items`)."""
    now = datetime.now(UTC)
    for event in events:
        _check_data(event)
    return [{
        "id": event.id or uuid.uuid4(), "type": event.type,
        "occurred_at": event.occurred_at or now, "data": to_jsonable_python(event.data),
        "priority": REFRESH_PRIORITY[event.type],
        "recipients": list(dict.fromkeys(r for r in event.recipients if r is not None)),
    } for event in events]


async def emit_many(session: AsyncSession, events: Sequence[OutboundEvent]) -> None:
    """`emit` for several events, in one round trip (an executemany of `outbox_emit()`)."""
    if rows := outbox_rows(events):
        await session.execute(_EMIT, rows)


_EMIT = text(
    "select outbox_emit(:id, :type, :occurred_at, :data, :priority, :recipients)"
).bindparams(
    bindparam("data", type_=JSONB), bindparam("recipients", type_=ARRAY(PgUUID(as_uuid=True))),
    bindparam("occurred_at", type_=DateTime(timezone=True)),
)


# Set-based emitters (the prioritizer, the capacity checker, the matcher) write many events
# in one statement; these build that SQL with the same columns and shape as `emit`.

def sql_rfc3339(expression: str) -> str:
    """SQL rendering a timestamptz exactly as `emit` serialises a UTC datetime
    (`2026-03-02T09:00:00Z`, microseconds only when present), for set-based emitters."""
    utc = f"({expression}) at time zone 'UTC'"
    return (
        f"""to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') || """
        f"case when extract(microseconds from {utc})::bigint % 1000000 <> 0 "
        f"then to_char({utc}, '.US') else '' end || 'Z'"
    )


def insert_events_sql(*, type: str, data: str, recipients: str, source: str,
                      occurred_at: str = ":now") -> str:
    """`INSERT INTO outbox_events ... SELECT` for set-based emitters (one event per row of
    `source`), with the same columns and refresh priority as `emit`. `data` is a SQL
    expression building the JSON object, `recipients` one building a uuid[] (NULLs are
    removed; keep it free of duplicates). Director events also go to every director
    (`director_ids()` once per statement, an InitPlan), without duplicates: appended as they
    are unless the row's own recipients include one (a per-row DISTINCT costs ~3 us a row:
    0.05 s for a 16,000-assignment publish)."""
    recipients_sql = f"array_remove({recipients}, null)"
    if type in DIRECTOR_EVENTS:
        directors = "(select director_ids())"
        recipients_sql = (f"case when {recipients} && {directors} "
                          f"then array(select distinct r from unnest({recipients} || "
                          f"{directors}) r where r is not null) "
                          f"else {recipients_sql} || {directors} end")
    return (
        "insert into outbox_events (id, type, occurred_at, data, refresh_priority, recipients) "
        f"select gen_random_uuid(), '{type}', {occurred_at}, {data}, "
        f"'{REFRESH_PRIORITY[type]}', {recipients_sql} from {source}"
    )


def envelope(row: OutboxEvent) -> dict[str, Any]:
    """The wire shape of an outbound event (SSE `data:` and webhook body)."""
    return {
        "id": str(row.id),
        "type": row.type,
        "occurred_at": row.occurred_at.isoformat(),
        "source": SOURCE,
        "refresh_priority": row.refresh_priority,
        "data": row.data,
    }


async def active_mentor_id(session: AsyncSession, mentee_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(
        select(Assignment.mentor_id).where(
            Assignment.mentee_id == mentee_id, Assignment.ended_at.is_(None)
        )
    )


async def director_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Directors receive urgent events (flags). Through the SECURITY DEFINER function
    `director_ids()` (migration 0005), so any caller may resolve them: RLS hides director
    rows from mentors."""
    return list(await session.scalar(text("select director_ids()")) or [])
