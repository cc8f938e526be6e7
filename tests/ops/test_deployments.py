"""Two whole deployments (API + worker each, real processes, databases of their own) on ONE
Redis database, told apart only by REDIS_PREFIX, for several cron periods: each relays its
own events, runs every one of its own cron ticks, and never touches a key outside its
prefix (Redis ACL users limited to the prefix refuse anything else; the keyspace is scanned
afterwards)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.db import Database
from app.core.jobqueue import arq_client
from app.core.redis import make_redis, user_stream_key
from tests.support.deployments import (
    Deployment,
    acl_denials,
    create_acl_user,
    create_deployment,
    delete_acl_user,
)
from tests.support.events_helpers import mission_submitted
from tests.support.factories import Factory
from tests.support.worker_helpers import wait_until

# Four processes start on a machine that may be busy: more than the default 300 s.
pytestmark = pytest.mark.timeout(900)

# Periods in seconds, short so a few seconds hold several ticks of each.
PERIODS = {"sla_sweep_interval_seconds": "2", "programme_metrics_interval_seconds": "3",
           "capacity_check_interval_seconds": "4"}
CRONS = ("cron:prioritize_work_queue", "refresh_programme_metrics", "cron:check_mentor_capacity")
TICKS = 3


async def all_keys(redis) -> set[str]:
    return {key async for key in redis.scan_iter(count=1000)}


async def cron_ticks(redis, deployment: Deployment, name: str) -> set[str]:
    """The ticks of cron job `name` this deployment ran (each keeps its result)."""
    pattern = f"{deployment.prefix}arq:result:{name}:*"
    return {key.rsplit(":", 1)[1] async for key in redis.scan_iter(match=pattern, count=1000)}


@pytest.fixture(scope="module")
async def deployments(servers, settings) -> AsyncIterator[dict]:
    redis = make_redis(settings)
    before = await all_keys(redis)
    # Created and migrated in threads, side by side (the harness's admin calls run their
    # own event loop).
    created = list(await asyncio.gather(*(
        asyncio.to_thread(create_deployment, servers, settings, name, **PERIODS)
        for name in ("a", "b"))))
    people = {}
    try:
        for deployment in created:
            await create_acl_user(redis, deployment)
            database = Database.connect(deployment.settings.worker_db_url, deployment.settings)
            try:
                factory = Factory(database, deployment.settings)
                mentor, (mentee,) = await factory.mentor_with_mentees(1)
                # Tokens are honoured only for a real service account (CONTRACT.md v2).
                people[deployment.name] = (mentor, mentee,
                                           await factory.role_headers("service"))
            finally:
                await database.dispose()
            deployment.start()
        for deployment in created:
            deployment.api.wait_ready(120)
        yield {"redis": redis, "before": before, "people": people,
               **{deployment.name: deployment for deployment in created}}
    finally:
        for deployment in created:
            deployment.stop()
        for deployment in created:
            await delete_acl_user(redis, deployment)
            await asyncio.to_thread(servers.drop_database, deployment.database)
        await redis.aclose()


async def test_each_deployment_relays_its_own_events(deployments) -> None:
    redis = deployments["redis"]
    for name in ("a", "b"):
        deployment: Deployment = deployments[name]
        mentor, mentee, service = deployments["people"][name]
        async with httpx.AsyncClient(base_url=deployment.api.url, timeout=30) as http:
            response = await http.post("/api/v1/events", headers=service,
                                       json={"events": [mission_submitted(mentee.id)]})
        assert response.status_code == 202, response.text
    for name, other in (("a", "b"), ("b", "a")):
        deployment, mentor = deployments[name], deployments["people"][name][0]
        stream = user_stream_key(deployment.settings, mentor.id)
        await wait_until(lambda stream=stream: redis.exists(stream), within=120,
                         message=f"deployment {name}'s relay to publish its event")
        entries = await redis.xrange(stream)
        assert [fields["type"] for _, fields in entries] == ["workqueue.item_created"]
        # The other deployment never wrote this user's stream under its own prefix.
        assert not await redis.exists(user_stream_key(deployments[other].settings, mentor.id))


async def test_each_deployment_runs_every_tick_of_its_own_crons(deployments) -> None:
    redis = deployments["redis"]
    a, b = deployments["a"], deployments["b"]
    for deployment in (a, b):
        for name in CRONS:
            async def enough(deployment=deployment, name=name) -> bool:
                return len(await cron_ticks(redis, deployment, name)) >= TICKS
            await wait_until(enough, within=180,
                             message=f"{TICKS} ticks of {name} in deployment {deployment.name}")
    for name in CRONS:
        # Same tick instants, each run in both deployments: no stolen ticks. (A tick may
        # fall between the two workers' start-ups, hence the intersection, not equality.)
        shared = await cron_ticks(redis, a, name) & await cron_ticks(redis, b, name)
        assert len(shared) >= TICKS - 1, (name, shared)
    for deployment in (a, b):
        client = arq_client(deployment.settings)
        try:
            results = await client.all_job_results()
        finally:
            await client.aclose()
        failed = [(r.function, r.result) for r in results if not r.success]
        assert not failed, failed


async def test_each_worker_serves_its_jobs_and_the_deployment_series_once(deployments) -> None:
    from tests.ops.test_exporter import promtool_check_metrics, samples

    for name in ("a", "b"):
        deployment = deployments[name]

        async def scraped(deployment=deployment) -> bool:
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    text = (await http.get(deployment.worker_metrics_url)).text
            except httpx.HTTPError:
                return False
            deployment.scraped = text
            return bool(samples(text, "mentor_response_time_p95_seconds")) and any(
                s.labels["function"] == "cron:prioritize_work_queue" and s.value > 0
                for s in samples(text, "mentorship_job_runs_total"))
        await wait_until(scraped, within=120, message=f"worker {name}'s metrics")
        text = deployment.scraped
        assert [s.value for s in samples(text, "mentorship_metrics_exporter")] == [1.0]
        assert len(samples(text, "mentorship_outbox_backlog")) == 1
        checked = promtool_check_metrics(text)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        async with httpx.AsyncClient(base_url=deployment.api.url, timeout=10) as http:
            api = (await http.get("/metrics")).text
        assert not samples(api, "mentorship_outbox_backlog")
        checked = promtool_check_metrics(api)
        assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_no_deployment_touches_a_key_outside_its_prefix(deployments) -> None:
    redis = deployments["redis"]
    a, b = deployments["a"], deployments["b"]
    await wait_until(lambda: _has_result(redis, a), within=180, message="a cron result in a")
    await wait_until(lambda: _has_result(redis, b), within=180, message="a cron result in b")
    # Stop both (a worker drains and exits 0 on SIGTERM), then read the whole keyspace.
    for deployment in (a, b):
        assert deployment.stop_worker() == 0, deployment.worker_logs()[-3000:]
        deployment.api.stop()
    new = await all_keys(redis) - deployments["before"]
    # Test runs (this one included) write under "mtest:<run>:", the deployments under
    # "<run prefix>dep<name>:": nothing new may sit anywhere else (arq's defaults would be
    # "arq:...").
    assert not [key for key in new if not key.startswith("mtest:")], sorted(new)[:20]
    mine = {d.name: {k for k in new if k.startswith(d.prefix)} for d in (a, b)}
    for deployment in (a, b):
        assert f"{deployment.prefix}arq:queue" in mine[deployment.name] or any(
            ":arq:result:" in key for key in mine[deployment.name])
        assert await acl_denials(redis, deployment) == []
    # The shutdown removed each worker's health record.
    assert not any(key.endswith(":health-check") for key in mine["a"] | mine["b"])


async def _has_result(redis, deployment: Deployment) -> bool:
    return bool(await cron_ticks(redis, deployment, CRONS[0]))
