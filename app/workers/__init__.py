"""arq workers: `arq app.workers.WorkerSettings` (any number may run at once).

Every job is a thin call to a service function, takes ids, runs in its own transaction on
the workers' BYPASSRLS engine (acting as the system), and is safe to run twice.
Job modules add their functions to `FUNCTIONS` and their cron jobs to `CRON_JOBS`.
"""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings

from app.config import Settings, get_settings
from app.core import telemetry
from app.core.db import Database
from app.core.logging import configure_logging
from app.core.redis import make_redis, queue_name

# Instrumented lists: every job appended is counted (mentorship_job_runs_total).
FUNCTIONS: list[Any] = telemetry.JobRegistry()
CRON_JOBS: list[Any] = telemetry.JobRegistry()


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings.log_level, json=settings.environment != "development")
    settings.require_secure("The worker")  # fail closed, like the API
    ctx["settings"] = settings
    ctx["db"] = Database.connect(settings.worker_db_url, settings, pool_size=5, max_overflow=5)
    ctx["redis_app"] = make_redis(settings)
    telemetry.instrument_engine(ctx["db"].engine, pool="worker")
    telemetry.start_worker_metrics_server(settings.worker_metrics_port)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["redis_app"].aclose()
    await ctx["db"].dispose()


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` (tests build burst workers from these)."""
    return {
        "functions": FUNCTIONS,
        "cron_jobs": CRON_JOBS,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": queue_name(settings),
        "health_check_key": f"{queue_name(settings)}:health-check",
        "ctx": {"settings": settings},
    }


class WorkerSettings:
    """Read by the arq CLI (`arq app.workers.WorkerSettings [--check]`)."""

    _options = worker_options(get_settings())
    functions = _options["functions"]
    cron_jobs = _options["cron_jobs"]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = _options["redis_settings"]
    queue_name = _options["queue_name"]
    health_check_key = _options["health_check_key"]
    max_tries = 5


# Job modules register themselves on import (after the lists above exist).
from app.services.sessions import jobs as sessions_jobs  # noqa: E402
from app.workers import (  # noqa: E402,F401
    events_jobs,
    jobs,
    ops_jobs,
    relay_jobs,
    webhook_jobs,
)

FUNCTIONS += sessions_jobs.FUNCTIONS
CRON_JOBS += sessions_jobs.CRON_JOBS
