"""Compliance jobs: the daily retention purge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.jobspec import Periodic
from app.services.compliance.retention import purge_expired


async def purge_expired_job(ctx: dict[str, Any]) -> dict[str, int]:
    return await purge_expired(ctx["db"], settings=ctx["settings"], now=datetime.now(UTC))


FUNCTIONS: list = []
CRON_JOBS = [
    # 03:17 UTC, away from the hour's other jobs.
    Periodic(purge_expired_job, name="purge_expired", every="retention_interval_seconds",
             offset=3 * 3600 + 17 * 60, timeout=3000),
]
