"""`/metrics` (Prometheus) and the director's programme metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.core import telemetry
from app.core.auth import CurrentStaff
from app.core.db import DbSession
from app.core.state import StateDep
from app.schemas.common import problem_responses
from app.schemas.ops import ProgrammeMetricsPublic
from app.services.ops.metrics import metrics_public, stored_programme_metrics

router = APIRouter()


@router.get(
    "/metrics",
    operation_id="prometheus_metrics",
    summary="Prometheus metrics",
    description="Prometheus text exposition: request counts and latency by route template, "
                "database pools, open SSE streams, outbox backlog and age, job runs and "
                "failures, and the five programme metrics (refreshed every minute by a worker "
                "job, read here, never computed per scrape). Serve it on an internal network.",
    tags=["ops"],
    response_class=Response,
    responses={200: {"description": "Prometheus text format 0.0.4",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(state: StateDep) -> Response:
    body = await telemetry.render(state.db)
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
    return metrics_public(await stored_programme_metrics(session))
