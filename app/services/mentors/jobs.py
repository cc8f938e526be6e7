"""The capacity checker: every mentor by cron (`CAPACITY_CHECK_INTERVAL_SECONDS`, hourly at
minute 7), or one mentor a few seconds after a booking (`enqueue_capacity_check`).

Safe to repeat: it only raises an alert that was not raised yet. The per-mentor job is
deduplicated by job id and keeps no result, so the next booking can enqueue it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from arq import func

from app.core.jobqueue import CAPACITY_CHECK_JOB
from app.core.jobspec import Periodic
from app.services.mentors.capacity_checker import check_capacity


async def check_mentor_capacity(ctx: dict[str, Any], mentor_id: str | None = None,
                                at: str | None = None) -> dict[str, int]:
    """Every mentor this week (cron), or one for the week a booking or reschedule lands in
    (`at`, the session's start)."""
    async with ctx["db"].transaction(None) as session:
        result = await check_capacity(
            session, mentor_id=uuid.UUID(mentor_id) if mentor_id else None,
            at=datetime.fromisoformat(at) if at else None,
        )
    return {"mentors": result.mentors, "exceeded": result.exceeded, "alerts": result.alerts}


FUNCTIONS = [
    func(check_mentor_capacity, name=CAPACITY_CHECK_JOB, timeout=120, max_tries=3,
         keep_result=0),
]
CRON_JOBS = [
    Periodic(check_mentor_capacity, name="cron:check_mentor_capacity",
             every="capacity_check_interval_seconds", offset=7 * 60, timeout=600,
             keep_result=3600),
]
