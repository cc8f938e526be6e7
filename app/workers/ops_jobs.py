"""Operations jobs: the programme metrics refresh (every minute)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq import cron

from app.services.ops.metrics import refresh_programme_metrics
from app.workers import CRON_JOBS


async def refresh_programme_metrics_job(ctx: dict[str, Any]) -> dict[str, float | None]:
    """Recompute the five programme metrics into `programme_metrics` (as the system)."""
    async with ctx["db"].transaction(None) as session:
        values = await refresh_programme_metrics(session, now=datetime.now(UTC))
    return {value.name: value.value for value in values}


# Every minute at second 0; `unique` so one worker runs it however many are up. Not at
# startup: burst workers (tests, one-off runs) would each run it.
CRON_JOBS.append(cron(refresh_programme_metrics_job, name="refresh_programme_metrics",
                      second=0, unique=True, timeout=50))
