"""Prometheus metrics: HTTP, database pools, jobs, and collectors other modules register.

- Process series (HTTP requests, observed by app/core/middleware.py; pools, jobs, SSE
  streams) live in prometheus-client's registry. With `PROMETHEUS_MULTIPROC_DIR` set
  (several uvicorn workers on one host) each process writes them to files in that
  directory and a scrape aggregates every process (`MultiProcessCollector`; gauges sum
  over live processes).
- Deployment-wide values (outbox backlog and age, the five programme metrics) are facts of
  the whole deployment, not of a process: exactly one process per deployment may serve
  them, or `sum()` in Prometheus counts them once per replica. The domain that owns them
  registers a collector here (`register_collector`; the ops exporter does, in the one
  worker holding the exporter lease: app/services/ops/exporter.py). Core reads no domain.

Request series are labelled by route template (`/api/v1/mentor/sessions/{session_id}`),
never by raw path, and by a fixed set of methods, so fuzzers cannot explode cardinality.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
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
from prometheus_client.core import Metric
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount
from starlette.types import Scope

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


# --- database pools -----------------------------------------------------------------------
def instrument_engine(engine: AsyncEngine, *, pool: str) -> None:
    """Keep the pool gauges current from SQLAlchemy's pool events (registered on the
    engine, so they follow a pool re-created by `dispose()`)."""
    sync_engine = engine.sync_engine
    # The labelled series once, not a labels() lookup (under a lock) per pool event.
    size, overflow, checked_out = (metric.labels(pool) for metric in (
        DB_POOL_SIZE, DB_POOL_OVERFLOW, DB_POOL_CHECKED_OUT))
    size.set(sync_engine.pool.size())

    def observe_size() -> None:
        current = sync_engine.pool
        size.set(current.size())
        overflow.set(max(0, current.overflow()))

    def on_checkout(*_: Any) -> None:
        checked_out.inc()
        observe_size()

    def on_checkin(*_: Any) -> None:
        # Fired before the connection is back in the queue: count it down explicitly.
        checked_out.dec()
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
    start_http_server(port, registry=_Served())  # type: ignore[arg-type]
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


_collectors: list[Any] = []


def register_collector(collector: Any) -> None:
    """Serve `collector` (anything with `collect()`) beside the process series, from this
    process's `/metrics` (the API's route or the worker's port). Once per collector."""
    if collector not in _collectors:
        _collectors.append(collector)


def unregister_collector(collector: Any) -> None:
    if collector in _collectors:
        _collectors.remove(collector)


class _Served:
    """What a scrape of this process returns: the process series (every process's in
    multi-process mode, read afresh) and the registered collectors."""

    def collect(self) -> Iterator[Metric]:
        yield from process_registry().collect()
        for collector in list(_collectors):
            yield from collector.collect()


def render() -> bytes:
    """The exposition text for one scrape of this process."""
    return generate_latest(_Served())  # type: ignore[arg-type]
