"""The programme metrics refresh (every `PROGRAMME_METRICS_INTERVAL_SECONDS`, a minute) and
the exporter of the deployment-wide series (app/services/ops/exporter.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.jobspec import Loop, Periodic
from app.services.ops.exporter import run_exporter, stop_exporter
from app.services.ops.metrics import refresh_programme_metrics


async def refresh_programme_metrics_job(ctx: dict[str, Any]) -> dict[str, float | None]:
    """Recompute the five programme metrics into `programme_metrics` (as the system)."""
    async with ctx["db"].transaction(None) as session:
        values = await refresh_programme_metrics(session, now=datetime.now(UTC))
    return {value.name: value.value for value in values}


FUNCTIONS: list = []
CRON_JOBS = [
    Periodic(refresh_programme_metrics_job, name="refresh_programme_metrics",
             every="programme_metrics_interval_seconds", timeout=50),
]
# The deployment-wide series on /metrics: one worker per deployment serves them.
LOOPS = [Loop("metrics_exporter", run_exporter, stop_exporter)]
