"""Queueing the capacity check after bookings: one Redis enqueue per mentor and day while
this process's queued job is still waiting, and a client built once per pool."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.config import Settings
from app.core import jobqueue
from app.core.jobqueue import schedule_capacity_check
from app.core.redis import queue_name


async def queued_ids(redis, settings: Settings) -> set[str]:
    return {job_id.removeprefix(settings.redis_prefix)
            for job_id in await redis.zrange(queue_name(settings), 0, -1)}


async def test_a_waiting_check_covers_later_bookings_of_that_mentor_and_day(
        redis, settings: Settings) -> None:
    local = settings.model_copy(update={"redis_prefix": f"cap:{uuid.uuid4().hex[:8]}:",
                                        "capacity_check_delay_seconds": 60})
    mentor, other = uuid.uuid4(), uuid.uuid4()
    day = datetime(2031, 3, 12, 9, tzinfo=UTC)
    job_id = f"capacity-check:{mentor}:2031-03-12"
    try:
        await schedule_capacity_check(redis, local, mentor, day)
        assert await queued_ids(redis, local) == {job_id}
        # The queued job is taken away behind this process's back: a booking of the same
        # mentor and day within half the deferral trusts the memo and sends nothing...
        await redis.zrem(queue_name(local), job_id)
        await redis.delete(f"{local.redis_prefix}arq:job:{job_id}")
        await schedule_capacity_check(redis, local, mentor, day)
        assert await queued_ids(redis, local) == set()
        # ...while another mentor, or another day of the same mentor, is queued at once.
        await schedule_capacity_check(redis, local, other, day)
        await schedule_capacity_check(redis, local, mentor, day.replace(day=13))
        assert await queued_ids(redis, local) == {f"capacity-check:{other}:2031-03-12",
                                                  f"capacity-check:{mentor}:2031-03-13"}
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{local.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)


async def test_a_check_queued_elsewhere_is_not_remembered(redis, settings: Settings) -> None:
    """Another process's job may be due sooner than ours would be: no memo for a refusal."""
    local = settings.model_copy(update={"redis_prefix": f"cap:{uuid.uuid4().hex[:8]}:",
                                        "capacity_check_delay_seconds": 60})
    mentor = uuid.uuid4()
    day = datetime(2031, 3, 12, 9, tzinfo=UTC)
    try:
        assert await jobqueue.enqueue_capacity_check(redis, local, mentor, day)  # "elsewhere"
        await schedule_capacity_check(redis, local, mentor, day)  # refused: already queued
        key = (local.redis_prefix, f"capacity-check:{mentor}:2031-03-12")
        assert key not in jobqueue._QUEUED_UNTIL
        assert jobqueue._client_over(redis.connection_pool, local) is jobqueue._client_over(
            redis.connection_pool, local)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{local.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
