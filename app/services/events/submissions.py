"""Mission submissions and their `mission_review` items (`mission.submitted`).

Two ways in, the same effects (app/services/events/inbound.py describes them):
- `ingest_single_submission`: a request carrying one `mission.submitted`, the way most
  services send them, in one round trip: `ingest_mission_submitted()` (migration 0026) runs
  the inbox insert, the mentee check, the submission, its item and the item's outbox event.
- `create_mission_review_queue_items`: any number of submissions in one statement (event
  batches, after the batch's inbox statement; the arq job's replays and backfills).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.errors import NotFound
from app.core.sql import DriverQuery
from app.models import MissionSubmission
from app.schemas.events import MissionSubmitted, MissionSubmittedData
from app.services.workqueue.items import (
    NewWorkItem,
    work_items_parameters,
    work_items_statement,
)


def started(at: datetime) -> datetime:
    """When an SLA clock starts: when the thing happened, capped at now."""
    return min(at, datetime.now(UTC))


def review_item(data: MissionSubmittedData, event_id: uuid.UUID | None) -> NewWorkItem:
    """The `mission_review` item of a submission (keyed `mission.submitted:<id>`)."""
    return NewWorkItem(
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
        created_at=started(data.submitted_at),
    )


# --- one event, one round trip ---------------------------------------------------------------

_INGEST_ONE = DriverQuery(text(
    "select ingest_mission_submitted(:event_id, :event_type, :source, :occurred_at,"
    " :submission_id, :mentee_id, :mission_id, :title, :url, :submitted_at,"
    " :item_id, :priority, :source_key, :item_title, cast(:details as jsonb),"
    " :created_at, :due_at, :outbox_id, cast(:outbox_data as jsonb), :emitted_at,"
    " :refresh_priority)"
).bindparams(
    *(bindparam(name, type_=PgUUID(as_uuid=True)) for name in (
        "event_id", "submission_id", "mentee_id", "mission_id", "item_id", "outbox_id")),
    *(bindparam(name, type_=DateTime(timezone=True)) for name in (
        "occurred_at", "submitted_at", "created_at", "due_at", "emitted_at")),
    *(bindparam(name, type_=Text) for name in (
        "event_type", "source", "title", "url", "priority", "source_key", "item_title",
        "details", "outbox_data", "refresh_priority")),
))


async def ingest_single_submission(
    session: AsyncSession, *, event: MissionSubmitted, settings: Settings,
    unknown_mentee: Callable[[], None],
) -> bool:
    """Apply one `mission.submitted` not yet in the inbox. False if its id was seen before
    (nothing happens); calls `unknown_mentee` (which raises: the request is refused and its
    transaction rolls back) if no mentee has the event's `mentee_id`."""
    data = event.data
    item = work_items_parameters(settings, [review_item(data, event.id)])
    row = await _INGEST_ONE.fetchrow(session, {
        "event_id": event.id, "event_type": event.type, "source": event.source,
        "occurred_at": event.occurred_at, "submission_id": data.submission_id,
        "mentee_id": data.mentee_id, "mission_id": data.mission_id, "title": data.title,
        "url": str(data.url) if data.url else None, "submitted_at": data.submitted_at,
        "item_id": item["ids"][0], "priority": item["priorities"][0],
        "source_key": item["source_keys"][0], "item_title": item["titles"][0],
        "details": item["details"][0], "created_at": item["created_ats"][0],
        "due_at": item["due_ats"][0], "outbox_id": item["event_ids"][0],
        "outbox_data": item["event_data"][0], "emitted_at": item["occurred_at"],
        "refresh_priority": item["refresh_priority"],
    })
    outcome = row[0]
    if outcome == "duplicate":
        return False
    if outcome == "unknown_mentee":
        unknown_mentee()
    return True


# --- any number -------------------------------------------------------------------------------

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
    items = [review_item(data, event_id) for data, event_id in submissions]
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
