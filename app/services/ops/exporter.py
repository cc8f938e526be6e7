"""The deployment-wide series on /metrics, served by exactly one process per deployment.

Outbox backlog and age and the five programme metrics are facts of the deployment: served by
every API replica or worker, `sum()` in Prometheus would count them once per process. So
the processes that may serve them compete for one Redis lease, `<prefix>metrics:exporter`,
and the holder alone serves them: API processes (`API_METRICS_EXPORTER`, on by default), so
that the API's own `GET /metrics` carries the programme metrics as the contract says, and
workers that serve metrics (`WORKER_METRICS_PORT`) as a fallback. An API process takes the
lease over from a worker (which notices at its next refresh and stops serving them); a
worker never takes it from an API process. Every `exporter_refresh_seconds` the holder
renews the lease and reads the values (two index-served reads through the `ops_*`
SECURITY DEFINER functions); a scrape serves what it read last, so a scrape never touches
the database. A holder that dies is replaced once its lease lapses (three refresh periods);
one that stops releases the lease at once.

Every competing process serves `mentorship_metrics_exporter` (1 on the holder, 0
elsewhere), so `sum(mentorship_metrics_exporter)` is 1 in a healthy deployment (2 for at
most one refresh period after an API process took the lease from a worker).
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text

from app.config import Settings
from app.core import telemetry
from app.services.ops.metrics import DEFINITIONS

log = structlog.get_logger("app.ops.exporter")

# KEYS: lease. ARGV: holder, ttl ms, "1" when the caller may take the lease from a worker.
# Renew our lease, take a free one, or (an API process) a worker's; 1 when held.
_TAKE_OR_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if (not current) or (ARGV[3] == '1' and string.sub(current, 1, 7) == 'worker:') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_BACKLOG_SQL = text("""
    select b.pending,
           coalesce(extract(epoch from clock_timestamp() - b.oldest_created_at), 0)::float8
               as oldest_age
      from ops_outbox_backlog() b
""")
_PROGRAMME_SQL = text("""
    select name, value, extract(epoch from clock_timestamp() - computed_at)::float8 as age
      from ops_programme_metrics()
""")


def lease_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}metrics:exporter"


class DeploymentExporter:
    """A collector registered with app.core.telemetry, fed by `refresh()`."""

    def __init__(self, settings: Settings, db: Any, redis: Any, *,
                 kind: str = "worker") -> None:
        self.settings, self.db, self.redis = settings, db, redis
        self.kind = kind  # "api" takes the lease over from a worker, never the reverse
        self.holder = f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held_until = 0.0  # monotonic: past it we no longer count on the lease
        self.families: list[Metric] = []
        self.database_up = False

    @property
    def lease_ms(self) -> int:
        return int(self.settings.exporter_refresh_seconds * 3 * 1000)

    @property
    def holding(self) -> bool:
        return time.monotonic() < self.held_until

    async def refresh(self) -> None:
        started = time.monotonic()
        was_holding = self.holding
        try:
            held = await self.redis.eval(_TAKE_OR_RENEW, 1, lease_key(self.settings),
                                         self.holder, self.lease_ms,
                                         "1" if self.kind == "api" else "0")
        except Exception as exc:  # Redis away: keep serving until our lease would lapse
            log.warning("exporter_lease_failed", error=type(exc).__name__)
            held = was_holding
        else:
            self.held_until = started + self.lease_ms / 1000 * 0.9 if held else 0.0
        if bool(held) != was_holding:
            log.info("exporter_lease_taken" if held else "exporter_lease_lost",
                     holder=self.holder)
        if not held:
            self.families = []
            return
        try:
            self.families = await asyncio.wait_for(self._read(), 10)
            self.database_up = True
        except Exception as exc:  # the database is down: say so, serve no stale values
            log.warning("exporter_read_failed", error=type(exc).__name__)
            self.families, self.database_up = [], False

    async def release(self) -> None:
        self.held_until = 0.0
        self.families = []
        try:
            await self.redis.eval(_RELEASE, 1, lease_key(self.settings), self.holder)
        except Exception as exc:
            log.warning("exporter_release_failed", error=type(exc).__name__)

    async def _read(self) -> list[Metric]:
        async with self.db.transaction(None) as session:
            backlog = (await session.execute(_BACKLOG_SQL)).one()
            programme = {row.name: (row.value, row.age)
                         for row in await session.execute(_PROGRAMME_SQL)}
        families: list[Metric] = [
            GaugeMetricFamily("mentorship_outbox_backlog", "Outbox events not yet published.",
                              value=int(backlog.pending)),
            GaugeMetricFamily("mentorship_outbox_oldest_age_seconds",
                              "Age of the oldest unpublished outbox event (0 when none).",
                              value=float(backlog.oldest_age)),
        ]
        met = GaugeMetricFamily("mentorship_programme_metric_goal_met",
                                "1 when the programme metric meets its goal, 0 when not "
                                "(absent without data).", labels=["metric"])
        age = GaugeMetricFamily("mentorship_programme_metric_age_seconds",
                                "Seconds since the refresh job computed the metric.",
                                labels=["metric"])
        for definition in DEFINITIONS:
            value, seconds = programme.get(definition.name, (None, math.nan))
            name = definition.prometheus_name
            families.append(GaugeMetricFamily(
                name, f"{definition.description} Goal: {definition.goal.text} "
                      f"({definition.unit}).",
                value=math.nan if value is None else value * definition.export_scale))
            goal_met = definition.goal.met(value)
            if goal_met is not None:
                met.add_metric([name], 1.0 if goal_met else 0.0)
            age.add_metric([name], seconds)
        return [*families, met, age]

    def collect(self) -> Iterator[Metric]:
        holding = self.holding
        yield GaugeMetricFamily("mentorship_metrics_exporter",
                                "1 on the one process serving the deployment-wide series.",
                                value=1.0 if holding else 0.0)
        if holding:
            yield GaugeMetricFamily("mentorship_metrics_database_up",
                                    "1 when the last refresh could read the deployment-wide "
                                    "values.", value=1.0 if self.database_up else 0.0)
            yield from self.families


async def serve(exporter: DeploymentExporter) -> None:
    """Compete for the lease and refresh until cancelled; then release the lease."""
    telemetry.register_collector(exporter)
    try:
        while True:
            await exporter.refresh()
            await asyncio.sleep(exporter.settings.exporter_refresh_seconds)
    finally:
        telemetry.unregister_collector(exporter)
        await exporter.release()


async def run_exporter(ctx: dict[str, Any]) -> None:
    """The worker loop: compete for the lease and refresh, while this worker serves
    metrics; a worker without `WORKER_METRICS_PORT` never takes the lease."""
    settings: Settings = ctx["settings"]
    if settings.worker_metrics_port is None:
        await asyncio.Event().wait()  # nothing to serve from: idle until the worker stops
    exporter = DeploymentExporter(settings, ctx["db"], ctx["redis_app"])
    ctx["exporter"] = exporter
    await serve(exporter)


def start_api_exporter(settings: Settings, db: Any, redis: Any) -> asyncio.Task[None] | None:
    """The API process's exporter (its lifespan cancels the task at shutdown), or None with
    `API_METRICS_EXPORTER` off."""
    if not settings.api_metrics_exporter:
        return None
    return asyncio.create_task(serve(DeploymentExporter(settings, db, redis, kind="api")),
                               name="metrics_exporter")


async def stop_exporter(ctx: dict[str, Any]) -> int:
    """The loop's `drain`: the lease was released when the loop stopped; nothing to do."""
    return 0
