"""/metrics counted once: every process serves its process series, one process per
deployment the deployment-wide ones (an exporter lease in Redis; an API process ahead of the
workers, so the API's GET /metrics carries the programme metrics); every name passes
`promtool check metrics`."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from app.core import telemetry
from app.main import create_app
from app.models import OutboxEvent
from app.services.ops.exporter import DeploymentExporter, lease_key
from app.services.ops.metrics import DEFINITIONS
from tests.support.tools import require_tool


def samples(exposition: str, name: str) -> list:
    return [s for family in text_string_to_metric_families(exposition)
            for s in family.samples if s.name == name]


def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), "check", "metrics"], input=exposition,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def local(settings):
    """A deployment of its own (its own lease) on the run's database."""
    prefix = f"{settings.redis_prefix}exp{uuid.uuid4().hex[:6]}:"
    return settings.model_copy(update={"redis_prefix": prefix, "exporter_refresh_seconds": 1.0})


async def test_one_exporter_per_deployment_and_a_takeover(local, system_db, redis) -> None:
    first, second = (DeploymentExporter(local, system_db, redis) for _ in range(2))
    await first.refresh()
    await second.refresh()
    assert (first.holding, second.holding) == (True, False)
    assert await redis.get(lease_key(local)) == first.holder
    one, other = generate_latest(first).decode(), generate_latest(second).decode()
    assert [s.value for s in samples(one, "mentorship_metrics_exporter")] == [1.0]
    assert [s.value for s in samples(other, "mentorship_metrics_exporter")] == [0.0]
    assert samples(one, "mentorship_outbox_backlog") and not samples(
        other, "mentorship_outbox_backlog")
    # A stopped holder releases the lease: the next refresh elsewhere takes it over.
    await first.release()
    await second.refresh()
    assert (first.holding, second.holding) == (False, True)
    await first.refresh()
    assert not first.holding  # the lease is someone else's
    await second.release()
    assert not await redis.exists(lease_key(local))


async def test_backlog_and_age_are_read_by_the_exporter(local, system_db, redis) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    now = datetime.now(UTC)
    rows = [OutboxEvent(id=i, type="test.ops", occurred_at=now, data={},
                        refresh_priority="normal", created_at=now - timedelta(seconds=age))
            for i, age in zip(ids, (30, 3600, 5), strict=True)]
    rows[0].published_at = now  # published: not backlog
    async with system_db.transaction(None) as session:
        session.add_all(rows)
    exporter = DeploymentExporter(local, system_db, redis)
    try:
        await exporter.refresh()
        exposition = generate_latest(exporter).decode()
        (backlog,) = samples(exposition, "mentorship_outbox_backlog")
        (age,) = samples(exposition, "mentorship_outbox_oldest_age_seconds")
        assert backlog.value >= 2 and age.value >= 3600
        (up,) = samples(exposition, "mentorship_metrics_database_up")
        assert up.value == 1.0
        names = {s.name for s in text_string_to_metric_families(exposition) for s in s.samples}
        assert {d.prometheus_name for d in DEFINITIONS} <= names
        assert "mentor_response_time_p95_seconds" in names
        assert "mentor_response_time_p95_hours" not in names
        checked = promtool_check_metrics(exposition)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        await exporter.release()
        async with system_db.transaction(None) as session:
            await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))


async def test_a_database_outage_is_said_not_hidden(local, redis) -> None:
    class Down:
        def transaction(self, principal):
            raise ConnectionRefusedError("database down")

    exporter = DeploymentExporter(local, Down(), redis)
    try:
        await exporter.refresh()
        exposition = generate_latest(exporter).decode()
        (up,) = samples(exposition, "mentorship_metrics_database_up")
        assert up.value == 0.0
        assert not samples(exposition, "mentorship_outbox_backlog")
    finally:
        await exporter.release()


async def test_an_api_process_takes_the_lease_over_from_a_worker(local, system_db,
                                                                  redis) -> None:
    worker, other_worker = (DeploymentExporter(local, system_db, redis) for _ in range(2))
    api, other_api = (DeploymentExporter(local, system_db, redis, kind="api")
                      for _ in range(2))
    try:
        await worker.refresh()
        await api.refresh()
        assert await redis.get(lease_key(local)) == api.holder
        await worker.refresh()  # the worker notices and stops serving the series
        await other_worker.refresh()
        await other_api.refresh()  # an API process does not take it from another
        assert [e.holding for e in (worker, other_worker, api, other_api)] == [
            False, False, True, False]
        assert not samples(generate_latest(worker).decode(), "mentorship_outbox_backlog")
    finally:
        for exporter in (worker, other_worker, api, other_api):
            await exporter.release()


async def test_the_apis_own_metrics_route_serves_the_programme_metrics(local) -> None:
    """The contract's `GET /metrics` on the API: the five programme metrics (the response
    time in seconds), once per deployment."""
    application = create_app(local.model_copy(update={"api_metrics_exporter": True}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for _ in range(100):  # the first refresh runs beside the startup
                exposition = (await http.get("/metrics")).text
                if [s.value for s in samples(exposition, "mentorship_metrics_exporter")] == [1]:
                    break
                await asyncio.sleep(0.1)
    names = {s.name for f in text_string_to_metric_families(exposition) for s in f.samples}
    assert {d.prometheus_name for d in DEFINITIONS} <= names
    assert "mentor_response_time_p95_seconds" in names
    assert [s.value for s in samples(exposition, "mentorship_metrics_exporter")] == [1.0]
    checked = promtool_check_metrics(exposition)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not samples(telemetry.render().decode(), "mentorship_metrics_exporter")  # released


async def test_the_api_serves_no_deployment_series_with_its_exporter_off_and_passes_promtool(
        client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    exposition = (await client.get("/metrics")).text
    assert samples(exposition, "mentorship_http_requests_total")
    for name in ("mentorship_outbox_backlog", "mentorship_metrics_exporter",
                 *(d.prometheus_name for d in DEFINITIONS)):
        assert not samples(exposition, name), name
    checked = promtool_check_metrics(exposition)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_registered_collectors_are_served_beside_the_process_series() -> None:
    class One:
        def collect(self):
            from prometheus_client.core import GaugeMetricFamily
            yield GaugeMetricFamily("mentorship_test_registered", "A test collector.", value=3)

    collector = One()
    telemetry.register_collector(collector)
    try:
        assert [s.value for s in samples(telemetry.render().decode(),
                                         "mentorship_test_registered")] == [3.0]
    finally:
        telemetry.unregister_collector(collector)
    assert not samples(telemetry.render().decode(), "mentorship_test_registered")
