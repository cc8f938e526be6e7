"""Job: create a mission's review work item (replays and backfills of `mission.submitted`).

`create_mission_review_queue_item` takes either the event's `data` (a replay: stores the
submission if missing, then the item) or a stored `submission_id` (a backfill). Both call
the same service function as POST /api/v1/events, so running it twice creates nothing new.
"""

from __future__ import annotations

import uuid
from typing import Any

from arq import func

from app.schemas.events import MissionSubmittedData
from app.services.events import inbound
from app.workers import FUNCTIONS


async def create_mission_review_queue_item(
    ctx: dict[str, Any], *, data: dict[str, Any] | None = None, submission_id: str | None = None
) -> str | None:
    if (data is None) == (submission_id is None):
        raise ValueError("pass exactly one of `data` or `submission_id`")
    settings = ctx["settings"]
    async with ctx["db"].transaction(None) as session:
        if data is not None:
            item_id = await inbound.create_mission_review_queue_item(
                session, settings=settings, submission=MissionSubmittedData.model_validate(data)
            )
        else:
            item_id = await inbound.mission_review_from_submission(
                session, settings=settings, submission_id=uuid.UUID(submission_id)
            )
    return str(item_id) if item_id else None


FUNCTIONS.append(func(create_mission_review_queue_item, name="create_mission_review_queue_item"))
