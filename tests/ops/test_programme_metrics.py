"""The five programme metrics: values equal what the test computes itself from the rows.

The windowed metrics are computed at a fixed `now` in 2031, where only this module's rows
fall into the 30-day windows. The two programme-wide snapshots (overdue rate,
utilization) also cover whatever other tests left in the database, so the test computes
them in Python over every row, with its own rows chosen to make the time zones matter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from arq import Worker
from prometheus_client import generate_latest
from sqlalchemy import select

from app.core.jobqueue import arq_client
from app.core.telemetry import REGISTRY
from app.models import MentoringSession, ProgrammeMetric, SessionFeedback, User, WorkItem
from app.services.mentors.capacity import iso_week_bounds, mentor_zone
from app.services.ops.exporter import DeploymentExporter
from app.services.ops.metrics import (
    BY_NAME,
    DEFINITIONS,
    Goal,
    compute_programme_metrics,
    refresh_programme_metrics,
)
from app.workers import CRON_JOBS, worker_options

# Monday 03:00 UTC: still Sunday evening in Los Angeles (previous ISO week there), already
# Monday noon in Tokyo (a new ISO week there).
NOW = datetime(2031, 6, 16, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _item(mentee: User, **fields) -> WorkItem:
    created = fields.pop("created_at")
    return WorkItem(kind="risk_assessment", priority="normal", mentee_id=mentee.id,
                    source_key=f"test:{uuid.uuid4()}", title="t", created_at=created,
                    due_at=fields.pop("due_at", created + 72 * HOUR), **fields)


async def _session(factory, mentor, mentee, starts_at, status="scheduled"):
    return await factory.session(mentor, mentee, starts_at=starts_at, duration_minutes=30,
                                 status=status)


async def enqueue(settings, function: str) -> None:
    pool = arq_client(settings)
    try:
        await pool.enqueue_job(function)
    finally:
        await pool.aclose()


class TestGoals:
    @pytest.mark.parametrize(("goal", "value", "met"), [
        (Goal(lt=24), 23.99, True), (Goal(lt=24), 24.0, False),
        (Goal(gt=4.2), 4.2, False), (Goal(gt=4.2), 4.21, True),
        (Goal(min=0.6, max=0.8), 0.6, True), (Goal(min=0.6, max=0.8), 0.8, True),
        (Goal(min=0.6, max=0.8), 0.59, False), (Goal(min=0.6, max=0.8), 0.81, False),
        (Goal(lt=0.05), None, None),
    ])
    def test_goal_bounds(self, goal, value, met):
        assert goal.met(value) is met

    def test_definitions_match_the_contract(self):
        assert {d.name: d.goal.text for d in DEFINITIONS} == {
            "mentor_response_time_p95_hours": "< 24",
            "work_queue_overdue_rate": "< 0.05",
            "mentor_utilization": "0.6-0.8",
            "session_attendance_rate": "> 0.85",
            "mentee_satisfaction_score": "> 4.2",
        }


async def test_metrics_equal_values_computed_from_the_rows(factory, system_db):
    la = await factory.mentor(mentor_capacity_weekly=4,
                              mentor_availability={"timezone": "America/Los_Angeles",
                                                   "windows": []})
    tokyo = await factory.mentor(mentor_capacity_weekly=6, timezone="Asia/Tokyo",
                                 mentor_availability={"timezone": "", "windows": []})
    mentees = [await factory.mentee() for _ in range(6)]
    m = mentees

    # Sessions. Utilization counts live sessions in each mentor's own ISO week.
    sessions = [
        # LA week = Mon 2031-06-09 .. Sun 06-15 local (until 06-16 07:00 UTC)
        (la, m[0], NOW - 2 * HOUR, "completed"),          # Sun 18:00 LA: this LA week
        (la, m[1], NOW + 3 * HOUR, "scheduled"),          # Sun 23:00 LA: this LA week
        (la, m[2], NOW + 6 * HOUR, "cancelled"),          # frees its slot
        (la, m[3], NOW + 30 * HOUR, "scheduled"),         # next LA week
        (la, m[4], NOW - 3 * 24 * HOUR, "no_show"),       # Thu: this LA week
        # Tokyo week = Mon 2031-06-16 00:00 local = Sun 06-15 15:00 UTC
        (tokyo, m[0], NOW - 11.5 * HOUR, "completed"),    # Mon 00:30 Tokyo: this week
        (tokyo, m[1], NOW - 13 * HOUR, "completed"),      # Sun 23:00 Tokyo: last week
        (tokyo, m[2], NOW - 10 * 24 * HOUR, "completed"),  # in the 30-day window
        (tokyo, m[3], NOW - 20 * 24 * HOUR, "no_show"),
        (tokyo, m[4], NOW - 29 * 24 * HOUR, "completed"),
        (tokyo, m[5], NOW - 31 * 24 * HOUR, "completed"),  # outside the window
        (tokyo, m[5], NOW + 2 * HOUR, "completed"),        # after now: not in the window
    ]
    rows = [await _session(factory, *spec) for spec in sessions]

    # Feedback: mean over the window is exactly 4.2 (the goal is > 4.2: not met).
    ratings = [(5, 1), (4, 2), (4, 3), (3, 10), (5, 29), (1, 40)]  # (rating, days ago)
    await factory.add(*[
        SessionFeedback(session_id=row.id, mentor_id=row.mentor_id, mentee_id=row.mentee_id,
                        rating=rating, created_at=NOW - timedelta(days=days))
        for row, (rating, days) in zip(rows, ratings, strict=False)
    ])

    # Work items completed in the window (hours from creation to completion), one outside,
    # and unfinished ones, overdue or not.
    durations = [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    items = [_item(m[i % 6], created_at=NOW - timedelta(days=2) - h * HOUR, status="done",
                   completed_at=NOW - timedelta(days=2)) for i, h in enumerate(durations)]
    items += [
        _item(m[0], created_at=NOW - timedelta(days=45), status="done",
              completed_at=NOW - timedelta(days=31)),                 # completed too long ago
        _item(m[1], created_at=NOW - 5 * HOUR, due_at=NOW - HOUR),      # open, overdue
        _item(m[2], created_at=NOW - 5 * HOUR, due_at=NOW - HOUR, status="in_progress"),
        _item(m[3], created_at=NOW - 5 * HOUR, due_at=NOW + HOUR),      # open, not yet due
        _item(m[4], created_at=NOW - 5 * HOUR, due_at=NOW + 5 * HOUR, status="in_progress"),
    ]
    await factory.add(*items)

    async with system_db.transaction(None) as session:
        values = {v.name: v for v in await compute_programme_metrics(session, now=NOW)}
        all_items = (await session.execute(select(WorkItem.status, WorkItem.due_at))).all()
        mentors = (await session.scalars(select(User).where(User.is_mentor))).all()
        live = (await session.execute(
            select(MentoringSession.mentor_id, MentoringSession.starts_at)
            .where(MentoringSession.status != "cancelled"))).all()

    # p95 with linear interpolation, as percentile_cont.
    p95 = values["mentor_response_time_p95_hours"]
    assert p95.value == pytest.approx(float(np.percentile(durations, 95)))
    assert p95.details["items"] == len(durations)

    window = [(status, starts) for (_, _, starts, status) in sessions
              if NOW - timedelta(days=30) < starts <= NOW]
    completed = sum(1 for status, _ in window if status == "completed")
    no_show = sum(1 for status, _ in window if status == "no_show")
    attendance = values["session_attendance_rate"]
    assert (attendance.details["completed"], attendance.details["no_show"]) == (completed, no_show)
    assert attendance.value == pytest.approx(completed / (completed + no_show))

    satisfaction = values["mentee_satisfaction_score"]
    assert satisfaction.value == pytest.approx(4.2)
    assert satisfaction.details["ratings"] == 5
    assert satisfaction.met is False  # 4.2 is not > 4.2

    unfinished = [due for status, due in all_items if status != "done"]
    overdue = values["work_queue_overdue_rate"]
    assert overdue.details == {"overdue": sum(due < NOW for due in unfinished),
                               "unfinished": len(unfinished)}
    assert overdue.value == pytest.approx(sum(due < NOW for due in unfinished) / len(unfinished))

    used = 0
    for mentor in mentors:
        start, end = iso_week_bounds(mentor_zone(mentor), NOW)
        used += sum(1 for mentor_id, starts in live
                    if mentor_id == mentor.id and start <= starts < end)
    total = sum(mentor.mentor_capacity_weekly for mentor in mentors)
    utilization = values["mentor_utilization"]
    assert utilization.details == {"mentors": len(mentors), "slots_used": used,
                                   "slots_total": total}
    assert utilization.value == pytest.approx(used / total)
    # This test's own mentors: LA 3 of 4 (Thu, Sun 18:00, Sun 23:00 local), Tokyo 2 of 6
    # (Mon 00:30 and Mon 14:00 local; Sun 23:00 belongs to the previous week).
    la_start, la_end = iso_week_bounds(mentor_zone(la), NOW)
    tokyo_start, tokyo_end = iso_week_bounds(mentor_zone(tokyo), NOW)
    assert sum(1 for mentor_id, s in live if mentor_id == la.id and la_start <= s < la_end) == 3
    assert sum(1 for mentor_id, s in live
               if mentor_id == tokyo.id and tokyo_start <= s < tokyo_end) == 2


async def test_metrics_without_data_have_no_value():
    class Empty:
        """A session whose aggregate queries find nothing."""

        async def execute(self, statement, params):
            class Result:
                def mappings(self):
                    return self

                def one(self):
                    return {"value": None, "items": 0, "overdue": 0, "unfinished": 0,
                            "mentors": 0, "slots_total": 0, "slots_used": 0, "completed": 0,
                            "no_show": 0, "ratings": 0}
            return Result()

    values = await compute_programme_metrics(Empty(), now=NOW)
    assert [v.value for v in values] == [None] * 5
    assert [v.met for v in values] == [None] * 5


async def test_refresh_job_runs_through_arq_and_feeds_the_api_and_metrics(
        settings, factory, system_db, client, redis):
    (refresh,) = [job.cron(settings) for job in CRON_JOBS
                  if job.name == "refresh_programme_metrics"]
    assert refresh.second == 0 and refresh.minute is None and refresh.unique  # every minute

    label = {"function": "refresh_programme_metrics", "outcome": "success"}
    runs_before = REGISTRY.get_sample_value("mentorship_job_runs_total", label) or 0
    await enqueue(settings, "refresh_programme_metrics")
    # Ticks once a day here: a tick at second 0 during the burst would run it a second time.
    daily = settings.model_copy(update={"programme_metrics_interval_seconds": 86400})
    worker = Worker(**worker_options(daily, loops=False), burst=True, poll_delay=0.05)
    try:
        await worker.main()
    finally:
        await worker.close()
    # Other tests' deferred jobs (e.g. capacity checks after bookings) may run in the same
    # burst; the refresh job's own counter says it ran exactly once.
    assert worker.jobs_complete >= 1 and worker.jobs_failed == 0
    assert REGISTRY.get_sample_value("mentorship_job_runs_total", label) == runs_before + 1

    async with system_db.transaction(None) as session:
        stored = {row.name: row for row in await session.scalars(select(ProgrammeMetric))}
        assert set(stored) == set(BY_NAME)
        computed_at = stored["mentor_utilization"].computed_at
        assert datetime.now(UTC) - computed_at < timedelta(minutes=1)
        again = {v.name: v for v in await compute_programme_metrics(session, now=computed_at)}
    for name, row in stored.items():
        if row.value is None:
            assert again[name].value is None
        else:
            assert row.value == pytest.approx(again[name].value)

    director = await factory.user("director")
    response = await client.get("/api/v1/director/metrics", headers=factory.headers(director))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [m["name"] for m in body["metrics"]] == [d.name for d in DEFINITIONS]
    for metric in body["metrics"]:
        definition = BY_NAME[metric["name"]]
        value = stored[metric["name"]].value
        assert metric["value"] == (None if value is None else pytest.approx(value))
        assert metric["goal"]["text"] == definition.goal.text
        assert metric["met"] == definition.goal.met(value)
        assert metric["computed_at"] is not None
    assert datetime.fromisoformat(body["computed_at"]) == computed_at

    # /metrics: the exporter serves them (in base units), the API does not.
    exporter = DeploymentExporter(settings, system_db, redis)
    await exporter.refresh()
    exposition = generate_latest(exporter).decode()
    for name, row in stored.items():
        definition = BY_NAME[name]
        line = next(line for line in exposition.splitlines()
                    if line.startswith(f"{definition.prometheus_name} "))
        shown = float(line.split()[1])
        assert (np.isnan(shown) if row.value is None
                else shown == pytest.approx(row.value * definition.export_scale))
        if row.value is not None:
            met = 1.0 if definition.goal.met(row.value) else 0.0
            label = f'metric="{definition.prometheus_name}"'
            assert f"mentorship_programme_metric_goal_met{{{label}}} {met}" in exposition
    await exporter.release()
    assert "mentor_utilization" not in (await client.get("/metrics")).text


async def test_an_older_refresh_never_overwrites_a_newer_one(system_db):
    now = datetime.now(UTC)
    async with system_db.transaction(None) as session:
        await refresh_programme_metrics(session, now=now)
    async with system_db.transaction(None) as session:
        await refresh_programme_metrics(session, now=now - timedelta(minutes=5))
        times = set(await session.scalars(select(ProgrammeMetric.computed_at)))
    assert times == {now}


class TestDirectorMetricsRoute:
    async def test_mentor_is_403_and_anonymous_401(self, client, factory):
        mentor = await factory.mentor()
        forbidden = await client.get("/api/v1/director/metrics", headers=factory.headers(mentor))
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "wrong_role"
        assert (await client.get("/api/v1/director/metrics")).status_code == 401

    async def test_admin_may_read(self, client, factory):
        admin = await factory.user("admin")
        response = await client.get("/api/v1/director/metrics", headers=factory.headers(admin))
        assert response.status_code == 200
        assert len(response.json()["metrics"]) == 5
