"""`/metrics` (Prometheus) and the director's programme metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from app.core import telemetry
from app.core.auth import CurrentStaff
from app.core.db import DbSession
from app.core.errors import Unauthorized
from app.schemas.common import problem_responses
from app.schemas.ops import ProgrammeMetricsPublic
from app.services.ops.metrics import stored_programme_metrics

router = APIRouter()


@router.get(
    "/metrics",
    operation_id="prometheus_metrics",
    summary="Prometheus metrics",
    description="Prometheus text exposition: request counts and latency by route template, "
                "database pools, open SSE streams, outbox backlog and age, job runs and "
                "failures, and the five programme metrics (refreshed every minute by a worker "
                "job, read here, never computed per scrape). Serve it on an internal network; "
                "with `METRICS_TOKEN` set it answers only `Authorization: Bearer "
                "<METRICS_TOKEN>` (else 401 `invalid_token`).",
    tags=["ops"],
    response_class=Response,
    responses={200: {"description": "Prometheus text format 0.0.4",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
               **problem_responses(401)},
)
async def prometheus_metrics(request: Request) -> Response:
    expected = request.app.state.settings.metrics_token
    if expected is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected.get_secret_value().encode()):
            raise Unauthorized("/metrics needs `Authorization: Bearer <METRICS_TOKEN>`",
                               code="invalid_token")
    body = await telemetry.render(request.app.state.db)
    return Response(body, media_type=telemetry.CONTENT_TYPE)


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
    responses=problem_responses(401, 403),
)
async def director_programme_metrics(
    principal: CurrentStaff, session: DbSession
) -> ProgrammeMetricsPublic:
    return ProgrammeMetricsPublic.from_values(await stored_programme_metrics(session))
