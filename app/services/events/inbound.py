"""Inbound events: exactly-once effects through the inbox, in the caller's transaction.

`ingest_events` records every event id in `inbox_events` with
`INSERT ... ON CONFLICT DO NOTHING RETURNING id` (inside `inbox_record()`) in the same
transaction as the effects, so:
- a repeat (an id seen before) returns nothing from the insert and has no effect;
- two transactions carrying the same id at once: the second one's insert waits on the unique
  primary key until the first commits, then sees the conflict (no effect) or, if the first
  rolled back, inserts and applies it. Never twice, never an error;
- a batch is one transaction, so any failing item (unknown mentee, ...) undoes all of it.

A request carrying one `mission.submitted` (most senders' way) does all of this in one round
trip: `ingest_mission_submitted()` (app/services/events/submissions.py, migration 0026) runs
the inbox insert, the mentee check and the effects. Anything else takes two or more: the
inbox statement, then the effects (consecutive submissions in one statement).

Decisions (documented in the OpenAPI description of POST /api/v1/events):
- An event about a mentee the service does not know (no user with that id and role
  `mentee`) is refused with 422 `unknown_mentee` and the item's index: the sender provisions
  the user (`user.upserted` earlier in the batch works) and retries; nothing is stored.
- SLA clocks start when the thing happened (`submitted_at` for a submission, `occurred_at`
  for the others), capped at now, so a late or replayed event is not granted extra time.
- An item for a mentee without a mentor is still created: work items belong to the mentee
  and RLS shows them to whoever is the mentee's active mentor, now or once assigned.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import DateTime, Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import Unprocessable
from app.core.sql import insert
from app.models import MenteeSignal, ReadinessRecord
from app.schemas.events import (
    GoalOverdue,
    HabitStreakBroken,
    InboundEvent,
    MissionSubmitted,
    ReadinessUpdated,
    UserUpserted,
)
from app.services.events.submissions import (
    create_mission_review_queue_items,
    ingest_single_submission,
    started,
)
from app.services.events.users import provision_user
from app.services.risk import alerts
from app.services.sessions.video import VideoProvider, make_video_provider
from app.services.workqueue.items import create_work_item

# The inbox insert and the lookup of the users the events name, in one round trip: rows
# ('inbox', id) for each event id not seen before, ('user', id, role, tier) for each user.
_RECORD = text(
    "select 'inbox' as kind, r.id, null::text as role, null::text as tier"
    " from inbox_record(:ids, :types, :sources, :occurred) as r(id)"
    " union all"
    " select 'user', u.id, u.role::text, u.tier::text from users u where u.id = any(:users)"
).bindparams(
    bindparam("ids", type_=ARRAY(PgUUID(as_uuid=True))), bindparam("types", type_=ARRAY(Text)),
    bindparam("sources", type_=ARRAY(Text)),
    bindparam("occurred", type_=ARRAY(DateTime(timezone=True))),
    bindparam("users", type_=ARRAY(PgUUID(as_uuid=True))),
).columns(kind=Text, id=PgUUID(as_uuid=True), role=Text, tier=Text)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicate_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass
class _Known:
    """What the batch knows about users so far: (role, tier) by id."""

    users: dict[uuid.UUID, tuple[str, str | None]]

    def mentee(self, mentee_id: uuid.UUID, index: int) -> str | None:
        """The mentee's tier; 422 `unknown_mentee` (with the item's index) if not a mentee."""
        known = self.users.get(mentee_id)
        if known is None or known[0] != "mentee":
            raise Unprocessable(
                f"Event {index}: no mentee with id {mentee_id}; provision the user first",
                code="unknown_mentee",
                errors=[{"loc": ["body", "events", index, "data", "mentee_id"],
                         "msg": "unknown mentee", "type": "unknown_mentee"}],
            )
        return known[1]


async def ingest_events(
    session: AsyncSession, *, events: Sequence[InboundEvent], settings: Settings,
    principal: Principal | None = None, video: VideoProvider | None = None,
) -> IngestResult:
    """Apply each event not seen before, once; returns how many were applied and which ids
    were duplicates (seen before, or repeated inside the batch)."""
    result = IngestResult()
    video = video or make_video_provider(settings)
    first: dict[uuid.UUID, int] = {}
    for index, event in enumerate(events):
        if event.id in first:
            result.duplicate_ids.append(event.id)
        else:
            first[event.id] = index
    if not first:
        return result
    if len(first) == 1:
        (index,) = first.values()
        if isinstance(event := events[index], MissionSubmitted):
            # One submission (most senders' way): one round trip (migration 0026).
            if await ingest_single_submission(
                session, event=event, settings=settings,
                unknown_mentee=lambda: _Known({}).mentee(event.data.mentee_id, index),
            ):
                result.accepted = 1
            else:
                result.duplicate_ids.append(event.id)
            return result

    # Through `inbox_record()` (migration 0017: only service callers write the inbox), which
    # inserts in id order: concurrent batches sharing ids wait on them in the same order, so
    # they cannot deadlock on the inbox.
    # The users are looked up for every event of the batch (only the new ones' are used).
    batch = [events[i] for i in first.values()]
    new_ids: set[uuid.UUID] = set()
    known = _Known({})
    for row in await session.execute(_RECORD, {
        "ids": [e.id for e in batch], "types": [e.type for e in batch],
        "sources": [e.source for e in batch], "occurred": [e.occurred_at for e in batch],
        "users": list({e.data.id if isinstance(e, UserUpserted) else e.data.mentee_id
                       for e in batch}),
    }):
        if row.kind == "inbox":
            new_ids.add(row.id)
        else:
            known.users[row.id] = (row.role, row.tier)
    result.duplicate_ids.extend(i for i in first if i not in new_ids)
    fresh = [(index, events[index]) for index in sorted(first.values())
             if events[index].id in new_ids]
    if not fresh:
        return result

    # Consecutive submissions are applied together (a few statements per run, whatever its
    # length); everything else in order, one event at a time.
    run: list[MissionSubmitted] = []
    for index, event in fresh:
        if isinstance(event, MissionSubmitted):
            known.mentee(event.data.mentee_id, index)
            run.append(event)
            continue
        if run:
            await _submissions(session, run, settings=settings)
            run = []
        await _apply(session, event=event, index=index, known=known, settings=settings,
                     principal=principal, video=video)
    if run:
        await _submissions(session, run, settings=settings)
    result.accepted = len(fresh)
    return result


async def _submissions(
    session: AsyncSession, events: list[MissionSubmitted], *, settings: Settings
) -> None:
    await create_mission_review_queue_items(
        session, settings=settings, submissions=[(e.data, e.id) for e in events]
    )


async def _apply(
    session: AsyncSession, *, event: InboundEvent, index: int, known: _Known, settings: Settings,
    principal: Principal | None, video: VideoProvider,
) -> None:
    if isinstance(event, UserUpserted):
        await provision_user(session, principal=principal, user_id=event.data.id,
                             user=event.data, video=video, index=index)
        known.users[event.data.id] = (event.data.role, event.data.tier)
    elif isinstance(event, HabitStreakBroken):
        known.mentee(event.data.mentee_id, index)
        await _habit_streak_broken(session, event=event, settings=settings)
    elif isinstance(event, GoalOverdue):
        tier = known.mentee(event.data.mentee_id, index)
        await _goal_overdue(session, event=event, tier=tier, settings=settings)
    elif isinstance(event, ReadinessUpdated):
        known.mentee(event.data.mentee_id, index)
        await _readiness_updated(session, event=event)
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise TypeError(f"unhandled event type {event.type}")


# --- effects --------------------------------------------------------------------------------

async def _habit_streak_broken(
    session: AsyncSession, *, event: HabitStreakBroken, settings: Settings
) -> None:
    data = event.data
    await session.execute(
        insert(MenteeSignal).values(
            mentee_id=data.mentee_id, kind="habit_streak_broken",
            data={"habit": data.habit, "streak_days": data.streak_days},
            occurred_at=event.occurred_at, event_id=event.id,
        ).on_conflict_do_nothing(index_elements=["event_id"])
    )
    await create_work_item(
        session,
        settings=settings,
        kind="risk_assessment",
        mentee_id=data.mentee_id,
        source_key=f"habit.streak_broken:{event.id}",
        title=f"Risk check: {data.habit} streak broken after {data.streak_days} days",
        details={"habit": data.habit, "streak_days": data.streak_days,
                 "event_id": str(event.id)},
        created_at=started(event.occurred_at),
    )


async def _goal_overdue(
    session: AsyncSession, *, event: GoalOverdue, tier: str | None, settings: Settings
) -> None:
    data = event.data
    details = {"goal_id": str(data.goal_id), "title": data.title,
               "due_at": data.due_at.isoformat()}
    await session.execute(
        insert(MenteeSignal).values(
            mentee_id=data.mentee_id, kind="goal_overdue", data=details,
            occurred_at=event.occurred_at, event_id=event.id,
        ).on_conflict_do_nothing(index_elements=["event_id"])
    )
    if tier is None or tier not in settings.goal_feedback_tiers:
        return  # recorded (it feeds risk), but this tier has no goal feedback
    await create_work_item(
        session,
        settings=settings,
        kind="goal_feedback",
        mentee_id=data.mentee_id,
        source_key=f"goal.overdue:{data.goal_id}",  # one item per goal, however often reported
        title=f"Goal feedback: {data.title}",
        details={**details, "event_id": str(event.id)},
        created_at=started(event.occurred_at),
    )


async def _readiness_updated(session: AsyncSession, *, event: ReadinessUpdated) -> None:
    """Store the readiness record; if the drop makes the mentee newly at risk, `risk.raised`
    goes to their mentor and the directors (app/services/risk/alerts.py)."""
    data = event.data
    now = datetime.now(UTC)
    before, _ = await alerts.risk_now(session, mentee_id=data.mentee_id, as_of=now)
    previous = data.previous_score
    if previous is None:  # the trend still shows a drop when the sender omits it
        previous = await session.scalar(
            select(ReadinessRecord.score).where(ReadinessRecord.mentee_id == data.mentee_id)
            .order_by(ReadinessRecord.recorded_at.desc()).limit(1)
        )
    await session.execute(
        insert(ReadinessRecord).values(
            mentee_id=data.mentee_id, score=data.score, previous_score=previous,
            recorded_at=event.occurred_at, event_id=event.id,
        ).on_conflict_do_nothing(index_elements=["event_id"])
    )
    await alerts.raise_if_newly_at_risk(session, mentee_id=data.mentee_id, before=before,
                                        as_of=now, cause="readiness_drop")
