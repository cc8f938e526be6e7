"""arq clients under the deployment's prefix, and enqueueing jobs by name.

The API's Redis client decodes responses to str; arq only writes when enqueueing (the job is
pickled bytes, which redis-py sends as is), so an arq client over the same connection pool
is enough. Results are never read back through it: a job reports through Postgres (e.g.
`matching_runs`), not through arq's result keys. Every arq key lands under
`settings.redis_prefix` (app/core/arqredis.py).
"""

from __future__ import annotations

import time
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from app.config import Settings
from app.core.arqredis import NamespacedArqRedis
from app.core.errors import ServiceUnavailable
from app.core.probe import worker_health_key
from app.core.redis import queue_name

log = structlog.get_logger("app.jobqueue")

# Job names registered by app/services/{matching,mentors}/jobs.py.
AUTO_MATCH_JOB = "auto_match_mentors"
CAPACITY_CHECK_JOB = "check_mentor_capacity"


def arq_client(settings: Settings, pool: ConnectionPool | None = None) -> NamespacedArqRedis:
    """An arq client under the deployment's prefix: over `pool` (e.g. the API's), or over a
    pool of its own that returns bytes, as arq's worker expects."""
    # A bounded connect, as arq's own pool has (an unreachable Redis fails fast).
    return NamespacedArqRedis(
        pool or ConnectionPool.from_url(settings.redis_url, socket_connect_timeout=5),
        key_prefix=settings.redis_prefix, default_queue_name=queue_name(settings),
    )


# One arq client per connection pool (the API's) and deployment: building a Redis client for
# each enqueue cost about as much CPU as the booking it followed (py-spy, issue 23).
_CLIENTS: weakref.WeakKeyDictionary[ConnectionPool, dict[tuple[str, str], NamespacedArqRedis]] = (
    weakref.WeakKeyDictionary())


def _client_over(pool: ConnectionPool, settings: Settings) -> NamespacedArqRedis:
    clients = _CLIENTS.setdefault(pool, {})
    key = (settings.redis_prefix, queue_name(settings))
    client = clients.get(key)
    if client is None:
        client = clients[key] = arq_client(settings, pool)
    return client


def health_check_key(settings: Settings) -> str:
    """Where this host's worker records its health (`arq app.workers.WorkerSettings --check`,
    `python -m app.core.probe worker`): one key per host name, so a container's probe says
    whether its own worker lives, and a worker stopping (arq deletes its key) or dying leaves
    the others' keys alone."""
    return worker_health_key(settings.redis_prefix)


async def enqueue_job(redis: Redis, settings: Settings, function: str, *args: Any,
                      job_id: str | None = None, defer_by: timedelta | None = None,
                      **kwargs: Any) -> bool:
    """Enqueue `function(*args, **kwargs)`. Returns False when a job with `job_id` is already
    queued or running (the id makes enqueueing idempotent). Raises `ServiceUnavailable`
    when Redis cannot be reached, so the caller's transaction rolls back."""
    client = _client_over(redis.connection_pool, settings)
    try:
        job = await client.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_by,
                                       **kwargs)
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable("The job queue is unavailable", code="queue_unavailable") from exc
    return job is not None


async def enqueue_capacity_check(redis: Redis, settings: Settings,
                                 mentor_id: uuid.UUID, at: datetime | None = None) -> bool:
    """After a booking: check this mentor's capacity for the week the session lands in
    (`at`, its start; default now) a few seconds later (once the booking has committed).
    Bookings of that day in that window share the queued job (same job id); the hourly
    cron catches anything else in the current week."""
    return await enqueue_job(
        redis, settings, CAPACITY_CHECK_JOB, str(mentor_id),
        at=at.isoformat() if at else None,
        job_id=_capacity_job_id(mentor_id, at),
        defer_by=timedelta(seconds=settings.capacity_check_delay_seconds),
    )


# Capacity checks this process queued, by (prefix, job id): until when the queued job
# surely has not started. arq would refuse a second job with the same id in that time anyway
# (three Redis round trips to learn it); the job, once it runs, sees every booking committed
# before it. Half the deferral is kept as margin for clock skew between API and worker hosts.
_QUEUED_UNTIL: dict[tuple[str, str], float] = {}
_QUEUED_MAX = 10_000


def _capacity_job_id(mentor_id: uuid.UUID, at: datetime | None) -> str:
    day = (at or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    return f"capacity-check:{mentor_id}:{day}"


async def schedule_capacity_check(redis: Redis, settings: Settings, mentor_id: uuid.UUID,
                                  at: datetime | None = None) -> None:
    """Run after a booking's response (its transaction has committed). A queue outage must
    not fail a booking that already happened: it is logged, and the hourly cron catches up.
    A check this process queued for the same mentor and day that is still waiting covers this
    booking too, so no Redis work is done for it."""
    key = (settings.redis_prefix, _capacity_job_id(mentor_id, at))
    now = time.monotonic()
    if _QUEUED_UNTIL.get(key, 0.0) > now:
        return
    try:
        queued = await enqueue_capacity_check(redis, settings, mentor_id, at)
    except ServiceUnavailable:
        log.warning("capacity_check_not_enqueued", mentor_id=str(mentor_id))
        return
    # Only a job this process queued is remembered: one queued elsewhere may be due sooner.
    if queued:
        if len(_QUEUED_UNTIL) >= _QUEUED_MAX:
            _QUEUED_UNTIL.clear()  # a full table only costs the round trips again
        _QUEUED_UNTIL[key] = now + settings.capacity_check_delay_seconds / 2
