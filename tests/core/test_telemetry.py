"""/metrics: request series by route template, pools, outbox, jobs, multi-process mode."""

from __future__ import annotations

import uuid

import httpx
import pytest
from arq import Worker, create_pool, func
from arq.connections import RedisSettings
from asgi_lifespan import LifespanManager
from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from app.core.redis import queue_name
from app.core.telemetry import REGISTRY, JobRegistry
from app.main import create_app
from app.workers import FUNCTIONS, worker_options
from tests.support.live import live_servers


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def samples(exposition: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(exposition)
            for s in family.samples if s.name == name]


@pytest.fixture(scope="module")
async def probe_app(settings):
    """The real app plus one route with a path parameter."""
    application = create_app(settings)

    @application.get("/probe/things/{thing_id}", operation_id="probe_thing", summary="Probe")
    async def probe_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    async with LifespanManager(application):
        yield application


@pytest.fixture
async def probe(probe_app):
    transport = httpx.ASGITransport(app=probe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


class TestRequestSeries:
    async def test_requests_are_labelled_by_route_template_never_raw_path(self, probe):
        route = "/probe/things/{thing_id}"
        before = sample("mentorship_http_requests_total", method="GET", route=route, status="200")
        latency_before = sample("mentorship_http_request_duration_seconds_count",
                                method="GET", route=route)
        raw = [f"raw-{uuid.uuid4().hex}" for _ in range(3)]
        for thing in raw:
            assert (await probe.get(f"/probe/things/{thing}")).status_code == 200
        assert sample("mentorship_http_requests_total", method="GET", route=route,
                      status="200") == before + 3
        assert sample("mentorship_http_request_duration_seconds_count", method="GET",
                      route=route) == latency_before + 3
        exposition = (await probe.get("/metrics")).text
        assert not any(thing in exposition for thing in raw)

    async def test_unmatched_paths_share_one_label(self, probe):
        before = sample("mentorship_http_requests_total", method="GET", route="<unmatched>",
                        status="404")
        path = f"/nope/{uuid.uuid4().hex}"
        assert (await probe.get(path)).status_code == 404
        assert sample("mentorship_http_requests_total", method="GET", route="<unmatched>",
                      status="404") == before + 1
        assert path not in (await probe.get("/metrics")).text

    async def test_odd_methods_are_one_label(self, probe):
        before = sample("mentorship_http_requests_total", method="OTHER", route="/healthz",
                        status="405")
        assert (await probe.request("BREW", "/healthz")).status_code == 405
        assert sample("mentorship_http_requests_total", method="OTHER", route="/healthz",
                      status="405") == before + 1

    async def test_admin_routes_keep_their_mount_prefix(self, probe):
        route = "/admin/{identity}/list"
        before = sample("mentorship_http_requests_total", method="GET", route=route,
                        status="302")
        assert (await probe.get("/admin/sessions/list")).status_code == 302  # to the login
        assert sample("mentorship_http_requests_total", method="GET", route=route,
                      status="302") == before + 1


async def test_pool_gauges_follow_checkouts(probe_app):
    engine = probe_app.state.shared.db.engine
    idle = sample("mentorship_db_pool_checked_out", pool="api")
    async with engine.connect(), engine.connect():
        assert sample("mentorship_db_pool_checked_out", pool="api") == idle + 2
    assert sample("mentorship_db_pool_checked_out", pool="api") == idle
    pool_size = probe_app.state.shared.settings.db_pool_size
    assert sample("mentorship_db_pool_size", pool="api") >= pool_size


async def test_every_registered_series_is_exposed(probe):
    """Series other modules register (e.g. the SSE streams gauge) need no wiring here."""
    gauge = Gauge(f"mentorship_test_{uuid.uuid4().hex[:8]}", "A test gauge.",
                  multiprocess_mode="livesum")
    gauge.set(7)
    try:
        exposition = (await probe.get("/metrics")).text
        (value,) = samples(exposition, gauge._name)
        assert value.value == 7
    finally:
        REGISTRY.unregister(gauge)


async def telemetry_ok_job(ctx):
    return "ok"


async def telemetry_broken_job(ctx):
    raise RuntimeError("boom")


async def test_job_runs_and_failures_are_counted(settings):
    jobs = JobRegistry([telemetry_ok_job])
    jobs += [func(telemetry_broken_job, name="telemetry_broken_job", max_tries=1)]
    assert telemetry_ok_job in jobs and telemetry_broken_job not in JobRegistry()
    ok, broken = telemetry_ok_job.__qualname__, "telemetry_broken_job"
    before = (sample("mentorship_job_runs_total", function=ok, outcome="success"),
              sample("mentorship_job_runs_total", function=broken, outcome="failure"))
    queue = f"{queue_name(settings)}:telemetry-{uuid.uuid4().hex[:6]}"
    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    pool = await create_pool(redis_settings, default_queue_name=queue)
    try:
        for name in (ok, ok, broken):
            await pool.enqueue_job(name)
    finally:
        await pool.aclose()
    worker = Worker(functions=jobs, redis_settings=redis_settings, queue_name=queue,
                    burst=True, poll_delay=0.05, max_tries=1)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 1)
    assert sample("mentorship_job_runs_total", function=ok, outcome="success") == before[0] + 2
    assert sample("mentorship_job_runs_total", function=broken,
                  outcome="failure") == before[1] + 1
    assert sample("mentorship_job_duration_seconds_count", function=ok) >= 2


def test_every_worker_job_is_instrumented(settings):
    assert worker_options(settings)["functions"] is FUNCTIONS
    assert isinstance(FUNCTIONS, JobRegistry)
    for job in [*worker_options(settings)["functions"], *worker_options(settings)["cron_jobs"]]:
        coroutine = getattr(job, "coroutine", job)
        assert getattr(coroutine, "__job_metrics__", False), job


def test_multiprocess_mode_aggregates_every_process(settings, tmp_path):
    """Two uvicorn processes sharing PROMETHEUS_MULTIPROC_DIR, as `--workers 2` would:
    either one's scrape shows both processes' requests, global values once, and a stopped
    process's live gauges disappear."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    route = {"method": "GET", "route": "/api/v1/whoami", "status": "401"}

    def count(exposition: str) -> float:
        return sum(s.value for s in samples(exposition, "mentorship_http_requests_total")
                   if all(s.labels.get(k) == v for k, v in route.items()))

    def pool_size(exposition: str) -> float:
        return sum(s.value for s in samples(exposition, "mentorship_db_pool_size")
                   if s.labels.get("pool") == "api")

    with live_servers(2, env) as (a, b):
        for server, n in ((a, 3), (b, 5)):
            for _ in range(n):
                assert httpx.get(f"{server.url}/api/v1/whoami").status_code == 401
        from_a = httpx.get(f"{a.url}/metrics").text
        from_b = httpx.get(f"{b.url}/metrics").text
        assert count(from_a) == count(from_b) == 8
        # Deployment-wide series come from one worker, never from API processes.
        assert not samples(from_a, "mentorship_outbox_backlog")
        assert pool_size(from_a) == 2 * settings.db_pool_size  # summed over live ones
        a.stop()
        # `a` stopped: its live gauges are gone, its counters stay.
        after = httpx.get(f"{b.url}/metrics").text
        assert pool_size(after) == settings.db_pool_size
        assert count(after) == 8
