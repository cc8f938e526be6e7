"""Inbound events: exactly-once effects through the inbox, in the caller's transaction.

`ingest_events` records every event id in `inbox_events` with
`INSERT ... ON CONFLICT DO NOTHING RETURNING id` (inside `inbox_record()`) in the same
transaction as the effects, so:
- a repeat (an id seen before) returns nothing from the insert and has no effect;
- two transactions carrying the same id at once: the second one's insert waits on the unique
  primary key until the first commits, then sees the conflict (no effect) or, if the first
  rolled back, inserts and applies it. Never twice, never an error;
- a batch is one transaction, so any failing item (unknown mentee, ...) undoes all of it.

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
from typing import Any

from sqlalchemy import DateTime, Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import NotFound, Unprocessable
from app.core.sql import insert
from app.models import MenteeSignal, MissionSubmission, ReadinessRecord
from app.schemas.events import (
    GoalOverdue,
    HabitStreakBroken,
    InboundEvent,
    MissionSubmitted,
    MissionSubmittedData,
    ReadinessUpdated,
    UserUpserted,
)
from app.services.events.users import provision_user
from app.services.risk import alerts
from app.services.sessions.video import VideoProvider, make_video_provider
from app.services.workqueue.items import (
    NewWorkItem,
    create_work_item,
    work_items_parameters,
    work_items_statement,
)

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


def _started(at: datetime) -> datetime:
    return min(at, datetime.now(UTC))


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

async def create_mission_review_queue_item(
    session: AsyncSession,
    *,
    settings: Settings,
    submission: MissionSubmittedData,
    event_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """Store the submission (once) and create its `mission_review` item (once, keyed
    `mission.submitted:<submission_id>`, which the review completes). Returns the new item's
    id, or None when nothing was created (already there, or the submission is decided).
    Serves `mission.submitted` and the arq job of the same name (replays, backfills)."""
    created = await create_mission_review_queue_items(
        session, settings=settings, submissions=[(submission, event_id)]
    )
    return created.get(submission.submission_id)


async def create_mission_review_queue_items(
    session: AsyncSession,
    *,
    settings: Settings,
    submissions: Sequence[tuple[MissionSubmittedData, uuid.UUID | None]],
) -> dict[uuid.UUID, uuid.UUID]:
    """`create_mission_review_queue_item` for many submissions in one statement.
    Returns {submission_id: new item id} for the items created."""
    values: dict[uuid.UUID, dict[str, Any]] = {}
    for data, _ in submissions:
        values.setdefault(data.submission_id, {
            "id": data.submission_id, "mentee_id": data.mentee_id,
            "mission_id": data.mission_id, "title": data.title,
            "url": str(data.url) if data.url else None, "submitted_at": data.submitted_at,
        })
    if not values:
        return {}
    items = [
        NewWorkItem(
            kind="mission_review",
            mentee_id=data.mentee_id,
            source_key=f"mission.submitted:{data.submission_id}",
            title=f"Review mission: {data.title}",
            details={
                "submission_id": str(data.submission_id),
                "mission_id": str(data.mission_id),
                "url": str(data.url) if data.url else None,
                "submitted_at": data.submitted_at.isoformat(),
                "event_id": str(event_id) if event_id else None,
            },
            created_at=_started(data.submitted_at),
        )
        for data, event_id in submissions
    ]
    # Key order, so two batches sharing submissions lock them in the same order.
    keys = sorted(values)
    created = await session.execute(_SUBMISSIONS_AND_REVIEWS, {
        **work_items_parameters(settings, items), "submission_ids": keys,
        **{f"submission_{column}s": [values[key][column] for key in keys]
           for column in ("mentee_id", "mission_id", "title", "url", "submitted_at")},
    })
    return {uuid.UUID(row.source_key.split(":", 1)[1]): row.id for row in created}


# The submissions and their review items in one round trip. A submission already stored (a
# replay) keeps its stored row: its item (if it has none yet) goes to the stored mentee, and
# a decided one needs no review. `known` is what was stored before this statement (a
# statement's CTEs do not see each other's writes); a submission stored meanwhile by a
# concurrent transaction conflicts on insert, and so does its item, by source_key.
_SUBMISSIONS_AND_REVIEWS = work_items_statement(
    before="""
    submitted as (
      select * from unnest(:submission_ids, :submission_mentee_ids, :submission_mission_ids,
                           :submission_titles, :submission_urls, :submission_submitted_ats)
        as s(id, mentee_id, mission_id, title, url, submitted_at)
    ), known as (
      select 'mission.submitted:' || m.id as source_key, m.mentee_id, m.status
        from mission_submissions m where m.id = any(:submission_ids)
    ), stored as (
      insert into mission_submissions (id, mentee_id, mission_id, title, url, submitted_at)
      select * from submitted order by id
      on conflict (id) do nothing
    ),""",
    mentee="coalesce(k.mentee_id, x.mentee_id)",
    where="left join known k on k.source_key = x.source_key "
          "where k.status is null or k.status = 'pending'",
    parameters=[
        bindparam("submission_ids", type_=ARRAY(PgUUID(as_uuid=True))),
        bindparam("submission_mentee_ids", type_=ARRAY(PgUUID(as_uuid=True))),
        bindparam("submission_mission_ids", type_=ARRAY(PgUUID(as_uuid=True))),
        bindparam("submission_titles", type_=ARRAY(Text)),
        bindparam("submission_urls", type_=ARRAY(Text)),
        bindparam("submission_submitted_ats", type_=ARRAY(DateTime(timezone=True))),
    ],
)


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
        created_at=_started(event.occurred_at),
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
        created_at=_started(event.occurred_at),
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


async def mission_review_from_submission(
    session: AsyncSession, *, settings: Settings, submission_id: uuid.UUID
) -> uuid.UUID | None:
    """Backfill: (re)create the review item of a stored submission."""
    row = await session.get(MissionSubmission, submission_id)
    if row is None:
        raise NotFound("No such submission")
    return await create_mission_review_queue_item(
        session, settings=settings,
        submission=MissionSubmittedData(
            submission_id=row.id, mentee_id=row.mentee_id, mission_id=row.mission_id,
            title=row.title, submitted_at=row.submitted_at, url=row.url,
        ),
    )
