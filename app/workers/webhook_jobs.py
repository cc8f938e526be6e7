"""Webhook deliveries as a worker task: `webhook_delivery_loop` claims due deliveries
(`FOR UPDATE SKIP LOCKED` + lease), sends them signed and records each attempt, for
`worker_loop_seconds`; a cron tick every 20 s starts one (see relay_jobs for why)."""

from __future__ import annotations

from typing import Any

from arq import cron

from app.config import get_settings
from app.services.events.webhooks import run_deliveries
from app.workers import CRON_JOBS


async def webhook_delivery_loop(ctx: dict[str, Any]) -> int:
    settings = ctx["settings"]
    return await run_deliveries(ctx["db"], settings=settings, seconds=settings.worker_loop_seconds)


CRON_JOBS.append(cron(
    webhook_delivery_loop, name="webhook_delivery_loop", second={0, 20, 40}, unique=True,
    timeout=get_settings().worker_loop_seconds + get_settings().webhook_timeout_seconds + 60,
    keep_result=0,
))
