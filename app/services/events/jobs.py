"""The events domain's worker work.

- `create_mission_review_queue_item` (arq function): replays and backfills of
  `mission.submitted`. It takes either the event's `data` (a replay: stores the submission
  if missing, then the item) or a stored `submission_id` (a backfill). Both call the same
  service function as POST /api/v1/events, so running it twice creates nothing new.
- Two loops every worker runs for its whole life (app/core/jobspec.py `Loop`): the outbox
  relay (commit -> XADD well under a second; polls every `relay_poll_seconds` when idle) and
  the webhook deliveries. Several workers' loops run side by side safely: rows are claimed
  with `FOR UPDATE SKIP LOCKED` and a lease. At shutdown, and so at the end of `--burst`, a
  worker drains both once. `python -m app.services.events.relay` runs a relay on its own.
"""

from __future__ import annotations

import uuid
from typing import Any

from arq import func

from app.core.jobspec import Loop
from app.schemas.events import MissionSubmittedData
from app.services.events import submissions
from app.services.events.relay import run_relay
from app.services.events.webhooks import run_deliveries


async def create_mission_review_queue_item(
    ctx: dict[str, Any], *, data: dict[str, Any] | None = None, submission_id: str | None = None
) -> str | None:
    if (data is None) == (submission_id is None):
        raise ValueError("pass exactly one of `data` or `submission_id`")
    settings = ctx["settings"]
    async with ctx["db"].transaction(None) as session:
        if data is not None:
            item_id = await submissions.create_mission_review_queue_item(
                session, settings=settings, submission=MissionSubmittedData.model_validate(data)
            )
        else:
            item_id = await submissions.mission_review_from_submission(
                session, settings=settings, submission_id=uuid.UUID(submission_id)
            )
    return str(item_id) if item_id else None


async def relay_outbox(ctx: dict[str, Any], *, until_idle: bool = False) -> int:
    return await run_relay(ctx["db"], ctx["redis_app"], settings=ctx["settings"],
                           until_idle=until_idle)


async def deliver_webhooks(ctx: dict[str, Any], *, until_idle: bool = False) -> int:
    return await run_deliveries(ctx["db"], settings=ctx["settings"], until_idle=until_idle)


async def _drain_outbox(ctx: dict[str, Any]) -> int:
    return await relay_outbox(ctx, until_idle=True)


async def _drain_webhooks(ctx: dict[str, Any]) -> int:
    return await deliver_webhooks(ctx, until_idle=True)


FUNCTIONS = [
    func(create_mission_review_queue_item, name="create_mission_review_queue_item"),
]
CRON_JOBS: list = []
# In this order: draining the relay first creates the deliveries the second drain sends.
LOOPS = [
    Loop("outbox_relay", relay_outbox, _drain_outbox),
    Loop("webhook_deliveries", deliver_webhooks, _drain_webhooks),
]
