"""Builders and readers shared by the workspace tests (work queue, reviews, flags, director)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.models import MissionSubmission, OutboxEvent, User, WorkItem
from tests.support.factories import Factory


async def work_item(factory: Factory, mentee: User, *, kind: str = "risk_assessment",
                    priority: str = "normal", status: str = "open",
                    due_in: timedelta = timedelta(hours=24), created_ago: timedelta =
                    timedelta(hours=1), **fields: Any) -> WorkItem:
    now = datetime.now(UTC)
    due_at = now + due_in
    created_at = min(now - created_ago, due_at - timedelta(hours=1))  # due after created
    item = WorkItem(
        id=uuid.uuid4(), kind=kind, priority=priority, status=status, mentee_id=mentee.id,
        source_key=fields.pop("source_key", f"test:{uuid.uuid4()}"),
        title=fields.pop("title", f"{kind} for {mentee.name}"),
        created_at=created_at, due_at=due_at, **fields,
    )
    await factory.add(item)
    return item


async def submission(factory: Factory, mentee: User, *, with_item: bool = True,
                     **fields: Any) -> tuple[MissionSubmission, WorkItem | None]:
    """A pending submission and (like ingestion does) its `mission_review` item."""
    row = MissionSubmission(
        id=uuid.uuid4(), mentee_id=mentee.id, mission_id=uuid.uuid4(),
        title=fields.pop("title", f"Mission of {mentee.name}"),
        submitted_at=datetime.now(UTC), **fields,
    )
    await factory.add(row)
    item = None
    if with_item:
        item = await work_item(factory, mentee, kind="mission_review", priority="high",
                               due_in=timedelta(hours=47),
                               source_key=f"mission.submitted:{row.id}",
                               title=f"Review {row.title}")
    return row, item


async def outbox_events(system_db, *, type: str, **data: Any) -> list[OutboxEvent]:
    """Outbox rows of `type` whose data has every given key/value (read as the system)."""
    async with system_db.transaction(None) as session:
        rows = list(await session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == type)
            .where(*(OutboxEvent.data[key].astext == str(value) for key, value in data.items()))
            .order_by(OutboxEvent.created_at)
        ))
    return rows


async def load(system_db, model, id_: uuid.UUID):
    async with system_db.transaction(None) as session:
        return await session.get(model, id_)


def body_without_echo(response) -> str:
    """The response body minus `instance` (a problem's echo of the request path, which holds
    only ids the caller sent): what is left must not reveal other people's data."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        body.pop("instance", None)
    return json.dumps(body)
