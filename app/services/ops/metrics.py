"""The five programme metrics: definitions, set-based computation, storage and goals.

A worker job recomputes them every minute (`refresh_programme_metrics`) into the
`programme_metrics` table; `/metrics` and `GET /api/v1/director/metrics` only read that
table, so a scrape never runs these queries. Every window ends at `now`; "last 30 days"
is the half-open interval (now - 30 days, now]. A metric with no data (an empty
denominator) has the value None (NaN on /metrics) and its goal is neither met nor missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ProgrammeMetric
from app.schemas.ops import GoalPublic, ProgrammeMetricPublic, ProgrammeMetricsPublic
from app.services.mentors.capacity import MENTOR_ZONE_SQL
from app.services.ops.history import record_day

WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Goal:
    """`lt` / `gt` are strict bounds; `min` / `max` an inclusive range."""

    lt: float | None = None
    gt: float | None = None
    min: float | None = None
    max: float | None = None

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return ((self.lt is None or value < self.lt) and (self.gt is None or value > self.gt)
                and (self.min is None or value >= self.min)
                and (self.max is None or value <= self.max))

    @property
    def text(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g}-{self.max:g}"
        return f"< {self.lt:g}" if self.lt is not None else f"> {self.gt:g}"


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    name: str
    unit: str
    goal: Goal
    description: str
    # On /metrics: Prometheus wants base units (seconds), so the hour-based figure the
    # director API keeps is exported as seconds under another name.
    exported_as: str | None = None
    export_scale: float = 1.0

    @property
    def prometheus_name(self) -> str:
        return self.exported_as or self.name


DEFINITIONS: tuple[MetricDefinition, ...] = (
    MetricDefinition(
        "mentor_response_time_p95_hours", "hours", Goal(lt=24),
        "95th percentile (percentile_cont) of completed_at - created_at, in hours, over work "
        "items completed in the last 30 days.",
        exported_as="mentor_response_time_p95_seconds", export_scale=3600.0,
    ),
    MetricDefinition(
        "work_queue_overdue_rate", "ratio", Goal(lt=0.05),
        "Share of the unfinished work queue (status open or in_progress) whose due_at has "
        "passed, at computation time: overdue unfinished items / unfinished items.",
    ),
    MetricDefinition(
        "mentor_utilization", "ratio", Goal(min=0.6, max=0.8),
        "Sum over mentors of the weekly slots used (live sessions starting in the current ISO "
        "week, in each mentor's own time zone) / sum of mentor_capacity_weekly.",
    ),
    MetricDefinition(
        "session_attendance_rate", "ratio", Goal(gt=0.85),
        "completed / (completed + no_show) over sessions that started in the last 30 days "
        "(scheduled and cancelled sessions do not count).",
    ),
    MetricDefinition(
        "mentee_satisfaction_score", "rating 1-5", Goal(gt=4.2),
        "Mean session feedback rating over feedback given in the last 30 days.",
    ),
)
BY_NAME = {definition.name: definition for definition in DEFINITIONS}


@dataclass(frozen=True, slots=True)
class MetricValue:
    name: str
    value: float | None
    details: dict[str, Any]
    computed_at: datetime | None

    @property
    def definition(self) -> MetricDefinition:
        return BY_NAME[self.name]

    @property
    def met(self) -> bool | None:
        return self.definition.goal.met(self.value)


def _ts(name: str):
    return bindparam(name, type_=DateTime(timezone=True))


_RESPONSE_TIME = text("""
    select percentile_cont(0.95) within group (
             order by extract(epoch from completed_at - created_at) / 3600.0) as value,
           count(*) as items
      from work_items
     where completed_at > :since and completed_at <= :now and status = 'done'
""").bindparams(_ts("since"), _ts("now"))

_OVERDUE = text("""
    select count(*) filter (where due_at < :now) as overdue, count(*) as unfinished
      from work_items
     where status <> 'done'
""").bindparams(_ts("now"))

# Same week bounds as app/services/mentors/capacity.py: the ISO week containing :now in each
# mentor's own zone; live (not cancelled) sessions use a slot.
_UTILIZATION = text(f"""
    with mentors as (
        select u.id, u.mentor_capacity_weekly as capacity,
               date_trunc('week', :now at time zone {MENTOR_ZONE_SQL})
                   at time zone {MENTOR_ZONE_SQL} as week_start,
               (date_trunc('week', :now at time zone {MENTOR_ZONE_SQL}) + interval '7 days')
                   at time zone {MENTOR_ZONE_SQL} as week_end
          from users u
         where u.is_mentor
    )
    select count(*) as mentors,
           coalesce(sum(m.capacity), 0)::bigint as slots_total,
           coalesce(sum((select count(*) from sessions s
                          where s.mentor_id = m.id and s.status <> 'cancelled'
                            and s.starts_at >= m.week_start and s.starts_at < m.week_end)), 0)
               ::bigint as slots_used
      from mentors m
""").bindparams(_ts("now"))

_ATTENDANCE = text("""
    select count(*) filter (where status = 'completed') as completed,
           count(*) filter (where status = 'no_show') as no_show
      from sessions
     where starts_at > :since and starts_at <= :now and status in ('completed', 'no_show')
""").bindparams(_ts("since"), _ts("now"))

_SATISFACTION = text("""
    select avg(rating)::float8 as value, count(*) as ratings
      from session_feedback
     where created_at > :since and created_at <= :now
""").bindparams(_ts("since"), _ts("now"))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


async def compute_programme_metrics(session: AsyncSession, *, now: datetime) -> list[MetricValue]:
    """Compute the five metrics at `now` with one aggregate query each. Run it as the
    system (workers' engine): the metrics cover the whole programme, not one caller's rows."""
    window = {"since": now - WINDOW, "now": now}

    async def one(statement, params) -> dict[str, Any]:
        return dict((await session.execute(statement, params)).mappings().one())

    response = await one(_RESPONSE_TIME, window)
    overdue = await one(_OVERDUE, {"now": now})
    load = await one(_UTILIZATION, {"now": now})
    attendance = await one(_ATTENDANCE, window)
    satisfaction = await one(_SATISFACTION, window)
    window_details = {"window_days": WINDOW.days}
    attended = attendance["completed"] + attendance["no_show"]
    return [
        MetricValue("mentor_response_time_p95_hours",
                    None if response["value"] is None else float(response["value"]),
                    {**window_details, "items": response["items"]}, now),
        MetricValue("work_queue_overdue_rate", _ratio(overdue["overdue"], overdue["unfinished"]),
                    overdue, now),
        MetricValue("mentor_utilization", _ratio(load["slots_used"], load["slots_total"]),
                    load, now),
        MetricValue("session_attendance_rate",
                    _ratio(attendance["completed"], attended),
                    {**window_details, **attendance}, now),
        MetricValue("mentee_satisfaction_score", satisfaction["value"],
                    {**window_details, "ratings": satisfaction["ratings"]}, now),
    ]


async def refresh_programme_metrics(session: AsyncSession, *, now: datetime) -> list[MetricValue]:
    """Recompute and upsert the five rows (safe to run concurrently or twice)."""
    values = await compute_programme_metrics(session, now=now)
    statement = insert(ProgrammeMetric).values([
        {"name": v.name, "value": v.value, "details": v.details, "computed_at": v.computed_at}
        for v in values
    ])
    await session.execute(statement.on_conflict_do_update(
        index_elements=[ProgrammeMetric.name],
        set_={"value": statement.excluded.value, "details": statement.excluded.details,
              "computed_at": statement.excluded.computed_at},
        # A slower, older run never overwrites a newer one.
        where=ProgrammeMetric.computed_at <= statement.excluded.computed_at,
    ))
    await record_day(session, values=values, now=now)
    await session.flush()
    return values


async def stored_programme_metrics(session: AsyncSession) -> list[MetricValue]:
    """The stored metrics in definition order; one never computed yet has no value."""
    rows = {row.name: row for row in (await session.scalars(select(ProgrammeMetric))).all()}
    return [
        MetricValue(d.name, rows[d.name].value, rows[d.name].details, rows[d.name].computed_at)
        if d.name in rows else MetricValue(d.name, None, {}, None)
        for d in DEFINITIONS
    ]


def metrics_public(values: list[MetricValue]) -> ProgrammeMetricsPublic:
    """The director API's view: each metric with its goal, and the oldest computation time."""
    times = [value.computed_at for value in values if value.computed_at is not None]
    return ProgrammeMetricsPublic(
        metrics=[_metric_public(value) for value in values],
        computed_at=min(times) if times else None,
    )


def _metric_public(metric: MetricValue) -> ProgrammeMetricPublic:
    definition, goal = metric.definition, metric.definition.goal
    return ProgrammeMetricPublic(
        name=metric.name, value=metric.value, unit=definition.unit,
        description=definition.description,
        goal=GoalPublic(lt=goal.lt, gt=goal.gt, min=goal.min, max=goal.max, text=goal.text),
        met=metric.met, computed_at=metric.computed_at, details=metric.details,
    )
