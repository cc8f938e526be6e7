"""Every key a deployment writes to Redis, arq's included, lives under its REDIS_PREFIX."""

from __future__ import annotations

import uuid

import pytest
from arq.worker import Worker

from app.config import Settings
from app.core.arqredis import NamespacedArqRedis, namespace_command
from app.core.jobqueue import CAPACITY_CHECK_JOB, arq_client, enqueue_job, health_check_key
from app.core.redis import make_redis, queue_name
from app.workers import worker_options


async def keys_matching(redis, pattern: str) -> list[str]:
    return sorted([key async for key in redis.scan_iter(match=pattern, count=1000)])


async def test_a_job_and_its_result_live_under_the_prefix(settings: Settings) -> None:
    local = settings.model_copy(update={"redis_prefix": f"iso:{uuid.uuid4().hex[:8]}:"})
    prefix = local.redis_prefix
    job_id = f"isolation-{uuid.uuid4().hex}"
    redis = make_redis(local)
    try:
        assert await enqueue_job(redis, local, CAPACITY_CHECK_JOB, job_id=job_id)
        assert await keys_matching(redis, f"*{job_id}*") == [f"{prefix}arq:job:{job_id}"]
        assert await redis.zscore(queue_name(local), job_id) is not None

        options = worker_options(local, loops=False)
        worker = Worker(**{**options, "cron_jobs": []}, burst=True, poll_delay=0.05,
                        handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
        # The in-progress marker goes when the job ends; its result and retry count stay.
        assert set(await keys_matching(redis, f"*{job_id}*")) <= {
            f"{prefix}arq:result:{job_id}", f"{prefix}arq:retry:{job_id}"}
        assert await redis.exists(f"{prefix}arq:result:{job_id}") == 0  # keep_result=0

        # Nothing of this run exists outside the prefix.
        assert not await keys_matching(redis, f"arq:*{job_id}*")
        assert health_check_key(local).startswith(prefix)
        for key in await keys_matching(redis, f"*{prefix}*"):
            assert key.startswith(prefix), key
    finally:
        await redis.delete(*await keys_matching(redis, f"{prefix}*") or ["-"])
        await redis.aclose()


async def test_results_read_back_through_the_prefixed_client(settings: Settings) -> None:
    local = settings.model_copy(update={"redis_prefix": f"iso:{uuid.uuid4().hex[:8]}:"})
    client = arq_client(local)
    try:
        # Without arguments the job fails at once, and a failure's result is kept.
        job = await client.enqueue_job("create_mission_review_queue_item",
                                       _job_id=f"iso-{uuid.uuid4().hex}")
        assert job is not None
        assert (await job.info()).function == "create_mission_review_queue_item"
        assert [d.job_id for d in await client.queued_jobs()] == [job.job_id]
        worker = Worker(**{**worker_options(local, loops=False), "cron_jobs": []}, burst=True,
                        poll_delay=0.05, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        # KEYS comes back without the prefix, as arq expects (all_job_results strips names).
        results = await client.all_job_results()
        assert [r.job_id for r in results] == [job.job_id]
        assert not results[0].success and isinstance(results[0].result, ValueError)
    finally:
        await client.aclose()
        plain = make_redis(local)
        keys = await keys_matching(plain, f"{local.redis_prefix}*")
        if keys:
            await plain.delete(*keys)
        await plain.aclose()


def test_keys_are_namespaced_once_and_unknown_commands_refused() -> None:
    assert namespace_command("p:", ("GET", "arq:job:1")) == ("GET", "p:arq:job:1")
    assert namespace_command("p:", ("GET", "p:arq:queue")) == ("GET", "p:arq:queue")
    assert namespace_command("p:", ("DEL", "a", b"b")) == ("DEL", "p:a", b"p:b")
    assert namespace_command("p:", ("CLIENT SETNAME", "x")) == ("CLIENT SETNAME", "x")
    with pytest.raises(ValueError, match="HSET is not namespaced"):
        namespace_command("p:", ("HSET", "arq:x", "f", "v"))
    with pytest.raises(ValueError):
        NamespacedArqRedis(key_prefix="")
