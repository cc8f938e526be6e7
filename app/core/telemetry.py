"""Prometheus metrics: HTTP, database pools, jobs, and the values read at scrape time.

Two kinds of series:
- Process counters, histograms and gauges (HTTP requests, pools, jobs, SSE streams) live in
  prometheus-client's registry. With `PROMETHEUS_MULTIPROC_DIR` set (several uvicorn
  workers, or API and worker on one host) each process writes them to files in that
  directory and a scrape aggregates every process (`MultiProcessCollector`; gauges sum
  over live processes).
- Database-wide values (outbox backlog and age, the five programme metrics) are global
  facts, not per process: each scrape reads them once through two SECURITY DEFINER
  functions (migration 0003) and renders them beside the registry, so they are never
  duplicated or summed across processes. The programme metrics themselves are computed by
  the refresh job (app/services/ops/metrics.py), never per scrape.

Request series are labelled by route template (`/api/v1/mentor/sessions/{session_id}`),
never by raw path, and by a fixed set of methods, so fuzzers cannot explode cardinality.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from arq.cron import CronJob
from arq.worker import Function, Retry, RetryJob
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.ops.metrics import BY_NAME, DEFINITIONS

log = structlog.get_logger("app.telemetry")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


# No `*_created` series next to every counter and histogram: half the scrape, no use here.
disable_created_metrics()


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


# --- process series -----------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "mentorship_http_requests", "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "mentorship_http_request_duration_seconds",
    "Time from receiving a request to sending its response headers (streams: until the "
    "stream opens), by route template and method.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_PROGRESS = Gauge(
    "mentorship_http_requests_in_progress", "Requests being served (open streams included).",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "mentorship_db_pool_checked_out", "Connections checked out of the SQLAlchemy pool.",
    ["pool"], multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "mentorship_db_pool_size", "Configured pool size (connections kept open).",
    ["pool"], multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "mentorship_db_pool_overflow", "Connections open beyond the pool size.",
    ["pool"], multiprocess_mode="livesum",
)
JOB_RUNS = Counter(
    "mentorship_job_runs",
    "arq job runs by function and outcome (success, failure, retry, cancelled); "
    "failures are outcome=\"failure\".",
    ["function", "outcome"],
)
JOB_DURATION = Histogram(
    "mentorship_job_duration_seconds", "arq job run time by function.", ["function"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


# --- HTTP ---------------------------------------------------------------------------------
def route_template(scope: Scope, entry_root_path: str = "") -> str:
    """The matched route's path template, with the prefix of any mount it sits in
    (the admin UI: `/admin/{identity}/list`). Unmatched requests share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return UNMATCHED
    mount_prefix = scope.get("root_path", "")[len(entry_root_path):]
    if isinstance(route, Mount):  # a mounted app without its own router (static files)
        return f"{mount_prefix}/{{path}}"
    return f"{mount_prefix}{path}"


class HttpMetricsMiddleware:
    """Counts requests and observes latency by route template (pure ASGI: no buffering,
    streams pass straight through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry_root_path = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500
        headers_sent_at: float | None = None

        async def send_and_observe(message: Message) -> None:
            nonlocal status, headers_sent_at
            if message["type"] == "http.response.start":
                status = message["status"]
                headers_sent_at = time.perf_counter()
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            HTTP_IN_PROGRESS.dec()
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            route = route_template(scope, entry_root_path)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(
                (headers_sent_at or time.perf_counter()) - started
            )


# --- database pools -----------------------------------------------------------------------
def instrument_engine(engine: AsyncEngine, *, pool: str) -> None:
    """Keep the pool gauges current from SQLAlchemy's pool events (registered on the
    engine, so they follow a pool re-created by `dispose()`)."""
    sync_engine = engine.sync_engine
    DB_POOL_SIZE.labels(pool).set(sync_engine.pool.size())

    def observe_size() -> None:
        current = sync_engine.pool
        DB_POOL_SIZE.labels(pool).set(current.size())
        DB_POOL_OVERFLOW.labels(pool).set(max(0, current.overflow()))

    def on_checkout(*_: Any) -> None:
        DB_POOL_CHECKED_OUT.labels(pool).inc()
        observe_size()

    def on_checkin(*_: Any) -> None:
        # Fired before the connection is back in the queue: count it down explicitly.
        DB_POOL_CHECKED_OUT.labels(pool).dec()
        observe_size()

    event.listen(sync_engine, "checkout", on_checkout)
    event.listen(sync_engine, "checkin", on_checkin)
    event.listen(sync_engine, "close", lambda *_: observe_size())


# --- jobs ---------------------------------------------------------------------------------
def _timed(coroutine: Callable[..., Any], name: str) -> Callable[..., Any]:
    if getattr(coroutine, "__job_metrics__", False):
        return coroutine

    @functools.wraps(coroutine)  # keeps __qualname__: arq names plain functions by it
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "failure"
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except (Retry, RetryJob):
            outcome = "retry"
            raise
        except asyncio.CancelledError:  # timeout, abort or worker shutdown
            outcome = "cancelled"
            raise
        else:
            outcome = "success"
            return result
        finally:
            JOB_RUNS.labels(name, outcome).inc()
            JOB_DURATION.labels(name).observe(time.perf_counter() - started)

    run.__job_metrics__ = True  # type: ignore[attr-defined]
    return run


def instrument_job(job: Any) -> Any:
    """The same job (plain coroutine, `arq.func(...)` or `arq.cron(...)`), counted."""
    if isinstance(job, CronJob | Function):
        return dataclasses.replace(job, coroutine=_timed(job.coroutine, job.name))
    if callable(job):
        return _timed(job, job.__qualname__)
    return job  # an import string: arq resolves it, uncounted


class JobRegistry(list):
    """`FUNCTIONS` / `CRON_JOBS`: a list that instruments every job added to it, whatever
    module adds it and whenever (job modules append at import time)."""

    def __init__(self, jobs: Iterable[Any] = ()) -> None:
        super().__init__(instrument_job(job) for job in jobs)

    def append(self, job: Any) -> None:
        super().append(instrument_job(job))

    def insert(self, index: Any, job: Any) -> None:
        super().insert(index, instrument_job(job))

    def extend(self, jobs: Iterable[Any]) -> None:
        super().extend(instrument_job(job) for job in jobs)

    def __iadd__(self, jobs: Iterable[Any]) -> JobRegistry:  # type: ignore[override]
        self.extend(jobs)
        return self

    def __contains__(self, job: object) -> bool:
        """`job in FUNCTIONS` holds for the original, uninstrumented function too."""
        def original(item: Any) -> Any:
            return getattr(getattr(item, "coroutine", item), "__wrapped__", None)

        return any(item == job or original(item) is job for item in self)


_worker_server_started = False


def start_worker_metrics_server(port: int | None) -> None:
    """The worker's own /metrics (for workers on other hosts than the API); once per
    process."""
    global _worker_server_started
    if port is None or _worker_server_started:
        return
    start_http_server(port, registry=process_registry())
    _worker_server_started = True
    log.info("worker_metrics_server", port=port)


def mark_process_dead() -> None:
    """On shutdown in multi-process mode: drop this process's live gauges."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())


# --- scrape -------------------------------------------------------------------------------
def process_registry() -> Any:
    """Every process's series in multi-process mode, else this process's registry."""
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@dataclass
class ScrapeSnapshot:
    """Database-wide values read once per scrape."""

    outbox_pending: int
    outbox_oldest_age_seconds: float
    # name -> (value, seconds since computed)
    programme: dict[str, tuple[float | None, float]]

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("mentorship_outbox_backlog",
                                "Outbox events not yet published.", value=self.outbox_pending)
        yield GaugeMetricFamily("mentorship_outbox_oldest_age_seconds",
                                "Age of the oldest unpublished outbox event (0 when none).",
                                value=self.outbox_oldest_age_seconds)
        met = GaugeMetricFamily("mentorship_programme_metric_goal_met",
                                "1 when the programme metric meets its goal, 0 when not "
                                "(absent without data).", labels=["metric"])
        age = GaugeMetricFamily("mentorship_programme_metric_age_seconds",
                                "Seconds since the refresh job computed the metric.",
                                labels=["metric"])
        for definition in DEFINITIONS:
            value, seconds = self.programme.get(definition.name, (None, math.nan))
            yield GaugeMetricFamily(
                definition.name,
                f"{definition.description} Goal: {definition.goal.text}.",
                value=math.nan if value is None else value,
            )
            goal_met = BY_NAME[definition.name].goal.met(value)
            if goal_met is not None:
                met.add_metric([definition.name], 1.0 if goal_met else 0.0)
            age.add_metric([definition.name], seconds)
        yield met
        yield age


_SNAPSHOT_SQL = text("""
    select b.pending,
           coalesce(extract(epoch from clock_timestamp() - b.oldest_created_at), 0)::float8
               as oldest_age
      from ops_outbox_backlog() b
""")
_PROGRAMME_SQL = text("""
    select name, value, extract(epoch from clock_timestamp() - computed_at)::float8 as age
      from ops_programme_metrics()
""")


async def read_snapshot(db: Any) -> ScrapeSnapshot:
    """Two cheap reads through SECURITY DEFINER functions (the API role may not read the
    outbox or the metrics table without a staff identity; these return aggregates only)."""
    async with db.transaction(None) as session:
        backlog = (await session.execute(_SNAPSHOT_SQL)).one()
        programme = {row.name: (row.value, row.age)
                     for row in await session.execute(_PROGRAMME_SQL)}
    return ScrapeSnapshot(int(backlog.pending), float(backlog.oldest_age), programme)


class _Combined:
    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


class _DatabaseUp:
    def __init__(self, up: bool) -> None:
        self.up = up

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("mentorship_metrics_database_up",
                                "1 when this scrape could read the database-wide values.",
                                value=1.0 if self.up else 0.0)


async def render(db: Any, timeout_seconds: float = 2.0) -> bytes:
    """The exposition text for one scrape. A database outage still serves the process
    series (and says so in `mentorship_metrics_database_up`)."""
    collectors: list[Any] = [process_registry()]
    try:
        snapshot = await asyncio.wait_for(read_snapshot(db), timeout_seconds)
    except Exception as exc:  # the scrape must not fail with the database
        log.warning("metrics_snapshot_failed", error=type(exc).__name__)
        collectors.append(_DatabaseUp(False))
    else:
        collectors += [snapshot, _DatabaseUp(True)]
    return generate_latest(_Combined(*collectors))  # type: ignore[arg-type]
