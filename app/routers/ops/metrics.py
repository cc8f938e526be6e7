"""`/metrics` (Prometheus) and the director's programme metrics."""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from app.core import telemetry
from app.core.auth import CurrentStaff
from app.core.db import DbSession
from app.core.errors import Unauthorized, Unprocessable
from app.core.problems import problems
from app.core.state import StateDep
from app.schemas.ops import MetricsHistoryPublic, ProgrammeMetricsPublic
from app.services.ops.history import history_csv, metrics_history
from app.services.ops.metrics import DEFINITIONS, metrics_public, stored_programme_metrics

router = APIRouter()
MAX_HISTORY_DAYS = 366


@router.get(
    "/metrics",
    operation_id="prometheus_metrics",
    summary="Prometheus metrics",
    description="Prometheus text exposition of this API process (every process of the "
                "host with PROMETHEUS_MULTIPROC_DIR): request counts and latency by route "
                "template, database pools, open SSE streams. Deployment-wide series (outbox "
                "backlog, the five programme metrics) and job series are served by the "
                "workers' metrics port (WORKER_METRICS_PORT), once per deployment. Serve it "
                "on an internal network; with `METRICS_TOKEN` set it answers only "
                "`Authorization: Bearer <METRICS_TOKEN>` (else 401 `invalid_token`).",
    tags=["ops"],
    response_class=Response,
    responses={200: {"description": "Prometheus text format 0.0.4",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
               **problems({401: ["invalid_token"]})},
)
async def prometheus_metrics(state: StateDep, request: Request) -> Response:
    expected = state.settings.metrics_token
    if expected is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected.get_secret_value().encode()):
            raise Unauthorized("/metrics needs `Authorization: Bearer <METRICS_TOKEN>`",
                               code="invalid_token")
    return Response(telemetry.render(), media_type=telemetry.CONTENT_TYPE)


@router.get(
    "/api/v1/director/metrics",
    operation_id="director_programme_metrics",
    summary="The five programme metrics with their goals",
    description="Each metric's value, unit, definition, goal and whether it is met, as the "
                "refresh job last computed them (every minute). Definitions: "
                "`mentor_response_time_p95_hours` p95 of work item created -> completed over "
                "items completed in the last 30 days (< 24); `work_queue_overdue_rate` overdue "
                "share of the unfinished queue (< 0.05); `mentor_utilization` weekly slots used "
                "this ISO week / weekly capacity, over all mentors (0.6-0.8); "
                "`session_attendance_rate` completed / (completed + no_show), last 30 days "
                "(> 0.85); `mentee_satisfaction_score` mean feedback rating, last 30 days (> 4.2).",
    tags=["director"],
    response_model=ProgrammeMetricsPublic,
)
async def director_programme_metrics(
    principal: CurrentStaff, session: DbSession
) -> ProgrammeMetricsPublic:
    return metrics_public(await stored_programme_metrics(session))


@router.get(
    "/api/v1/director/metrics/history",
    operation_id="director_metrics_history",
    summary="The programme metrics, one row per UTC day and metric",
    description="Each day's last computed value of the five programme metrics, `from` to `to` "
                "inclusive (UTC days; default: the last 30 days; at most 366 days). A day "
                "without a computation is a row with `value: null`. `?format=csv` returns "
                "the same rows as `text/csv` (`day,name,value,computed_at`).",
    tags=["director"],
    response_model=MetricsHistoryPublic,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
               **problems({422: ["invalid_range"]})},
)
async def director_metrics_history(
    principal: CurrentStaff, session: DbSession,
    since: Annotated[date | None, Query(alias="from", description="First UTC day")] = None,
    until: Annotated[date | None, Query(alias="to", description="Last UTC day")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> MetricsHistoryPublic | Response:
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=29)
    if since > until or (until - since).days >= MAX_HISTORY_DAYS:
        raise Unprocessable(f"`from` must be on or before `to`, at most {MAX_HISTORY_DAYS} "
                            "days apart", code="invalid_range")
    rows = await metrics_history(session, since=since, until=until,
                                 names=[d.name for d in DEFINITIONS])
    if format == "csv":
        return Response(history_csv(rows), media_type="text/csv; charset=utf-8")
    return MetricsHistoryPublic(items=rows)
