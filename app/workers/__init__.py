"""arq workers: `arq app.workers.WorkerSettings` (any number may run at once).

Every job is a thin call to a service function, takes ids, runs in its own transaction on
the workers' BYPASSRLS engine (acting as the system), and is safe to run twice.
Job modules add their functions to `FUNCTIONS` and their cron jobs to `CRON_JOBS`.
"""

from __future__ import annotations

import logging
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


# arq logs two INFO lines per job run; these cron jobs run every 20-60 s whether or not
# there is work, so at INFO an idle worker would scroll forever. Their start/finish lines
# show at DEBUG; failures, retries and cancellations (other arq messages) always show.
ROUTINE_CRON_JOBS = frozenset({
    "outbox_relay_loop", "webhook_delivery_loop", "refresh_programme_metrics",
    "cron:prioritize_work_queue", "cron:check_mentor_capacity",
})
_JOB_STARTED, _JOB_FINISHED = "%6.2fs → %s(%s)%s", "%6.2fs ← %s ● %s"


class RoutineJobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in (_JOB_STARTED, _JOB_FINISHED):
            return True
        routine = (isinstance(record.args, tuple) and len(record.args) > 1
                   and record.args[1] in ROUTINE_CRON_JOBS)
        return not routine or logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_routine_jobs() -> None:
    arq_logger = logging.getLogger("arq.worker")
    if not any(isinstance(f, RoutineJobFilter) for f in arq_logger.filters):
        arq_logger.addFilter(RoutineJobFilter())


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings.log_level, json=settings.environment != "development")
    quiet_routine_jobs()
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
from app.workers import (  # noqa: E402,F401
    events_jobs,
    jobs,
    ops_jobs,
    relay_jobs,
    webhook_jobs,
)
