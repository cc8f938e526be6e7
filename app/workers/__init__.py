"""arq workers: `arq app.workers.WorkerSettings` (any number may run at once).

This package only collects: each domain's `jobs` module exports `FUNCTIONS` (arq
functions), `CRON_JOBS` (`Periodic` specs, built here for the settings) and optionally
`LOOPS` (work that runs for the worker's whole life, app/core/jobspec.py). Every job is a
thin call to a service function, takes ids, runs in its own transaction on the workers'
BYPASSRLS engine (acting as the system), and is safe to run twice.

Every key the worker writes lives under `REDIS_PREFIX` (arq's own keys too: the worker's
client is `NamespacedArqRedis`, app/core/arqredis.py).
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import RedisSettings
from arq.cron import CronJob

from app.config import Settings, get_settings
from app.core import telemetry
from app.core.db import Database
from app.core.jobqueue import arq_client, health_check_key
from app.core.jobspec import Loop, Periodic
from app.core.logging import configure_logging
from app.core.redis import make_redis, queue_name
from app.services.compliance import jobs as compliance_jobs
from app.services.events import jobs as events_jobs
from app.services.matching import jobs as matching_jobs
from app.services.mentors import jobs as mentors_jobs
from app.services.ops import jobs as ops_jobs
from app.services.sessions import jobs as sessions_jobs
from app.services.workqueue import jobs as workqueue_jobs
from app.workers.loops import LoopRunner

_DOMAINS = (compliance_jobs, events_jobs, matching_jobs, mentors_jobs, ops_jobs,
            sessions_jobs, workqueue_jobs)

# Instrumented: every run is counted (mentorship_job_runs_total).
FUNCTIONS: list[Any] = telemetry.JobRegistry(
    job for domain in _DOMAINS for job in domain.FUNCTIONS)
CRON_JOBS: list[Periodic] = [job for domain in _DOMAINS for job in domain.CRON_JOBS]
LOOPS: list[Loop] = [loop for domain in _DOMAINS for loop in getattr(domain, "LOOPS", ())]


def cron_jobs(settings: Settings) -> list[CronJob]:
    return [telemetry.instrument_job(job.cron(settings)) for job in CRON_JOBS]


# arq logs two INFO lines per job run; the periodic jobs run every minute or so whether or
# not there is work, so at INFO an idle worker would scroll forever. Their start/finish
# lines show at DEBUG; failures, retries and cancellations (other arq messages) always show.
ROUTINE_CRON_JOBS = frozenset(job.name for job in CRON_JOBS)
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
    ctx["loop_runner"] = LoopRunner(ctx.get("loops", LOOPS), ctx)
    ctx["loop_runner"].start()


async def shutdown(ctx: dict[str, Any]) -> None:
    # arq has finished (or cancelled) its jobs; the loops stop and drain once. (A startup
    # that failed half-way leaves some of these unset: close what exists.)
    if "loop_runner" in ctx:
        await ctx["loop_runner"].stop(ctx["settings"].worker_drain_seconds)
    if "redis_app" in ctx:
        await ctx["redis_app"].aclose()
    if "db" in ctx:
        await ctx["db"].dispose()


def worker_options(settings: Settings, *, loops: bool = True) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` (tests build burst workers from these; without
    `loops` the worker neither relays nor delivers webhooks)."""
    return {
        "functions": FUNCTIONS,
        "cron_jobs": cron_jobs(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        # The worker talks through `redis_pool`; `redis_settings` is what `--check` reads.
        "redis_pool": arq_client(settings),
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": queue_name(settings),
        "health_check_key": health_check_key(settings),
        "health_check_interval": settings.worker_health_check_seconds,
        "max_tries": 5,
        "ctx": {"settings": settings, "loops": LOOPS if loops else []},
    }


# Read by the arq CLI (`arq app.workers.WorkerSettings [--check | --burst]`): a class whose
# attributes are `worker_options` for the environment's settings.
WorkerSettings = type("WorkerSettings", (), {
    "__doc__": "arq Worker keyword arguments for this deployment (see worker_options).",
    **worker_options(get_settings()),
})
