"""The SLA prioritizer as a cron job (every `SLA_SWEEP_INTERVAL_SECONDS`, 5 minutes).

Safe to repeat: it only changes what still needs changing. `keep_result` keeps each tick's
id taken for an hour, so a worker that enqueues late (its event loop was busy) cannot run a
finished tick again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.jobspec import Periodic
from app.services.workqueue.prioritizer import sweep_work_queue


async def prioritize_work_queue(ctx: dict[str, Any]) -> dict[str, int]:
    result = await sweep_work_queue(ctx["db"], settings=ctx["settings"], now=datetime.now(UTC))
    return {"escalated": result.escalated, "overdue": result.overdue, "events": result.events,
            "batches": result.batches}


FUNCTIONS: list = []
CRON_JOBS = [
    Periodic(prioritize_work_queue, name="cron:prioritize_work_queue",
             every="sla_sweep_interval_seconds", timeout=240, keep_result=3600),
]
