"""GET /api/v1/mentor/dashboard: every contract field, today in the mentor's zone, a constant
number of SQL statements whatever the number of mentees, and roles."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from app.core.auth import Principal
from app.models import MenteeSignal, ReadinessRecord, WorkItem
from app.services.dashboard.mentor import build_dashboard

DAY = timedelta(days=1)
DASHBOARD = "/api/v1/mentor/dashboard"


def work_item(mentee, *, kind="mission_review", priority="high", status="open",
              due_in=timedelta(hours=48), now=None):
    now = now or datetime.now(UTC)
    return WorkItem(kind=kind, priority=priority, status=status, mentee_id=mentee.id,
                    source_key=f"test:{uuid.uuid4()}", title=f"{kind} item",
                    created_at=now - 10 * DAY, due_at=now + due_in)


@contextmanager
def count_statements(app):
    """Every SQL statement the app's engine sends while the block runs."""
    statements: list[str] = []
    engine = app.state.shared.db.engine.sync_engine

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_dashboard_has_every_contract_field(client, factory):
    mentor, _ = await factory.mentor_with_mentees(2)
    response = await client.get(DASHBOARD, headers=factory.headers(mentor))
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"workqueue", "today_sessions", "at_risk_mentees", "capacity",
                         "generated_at"}
    assert set(body["workqueue"]) >= {"open", "overdue", "due_24h", "by_kind", "by_priority"}
    assert set(body["capacity"]) >= {"weekly_slots_used", "weekly_slots_total",
                                     "mentees_active", "mentees_max", "utilization"}
    assert body["capacity"]["label"] == "0/10 weekly slots"
    assert body["capacity"]["mentees_active"] == 2
    assert datetime.fromisoformat(body["generated_at"]).tzinfo is not None


async def test_workqueue_counts_only_the_mentors_unfinished_items(client, factory):
    now = datetime.now(UTC)
    mentor, (a, b) = await factory.mentor_with_mentees(2)
    other_mentor, (theirs,) = await factory.mentor_with_mentees(1)
    former = await factory.mentee()
    await factory.assign(mentor, former, started_at=now - 90 * DAY, ended_at=now - DAY)
    await factory.add(
        work_item(a, kind="mission_review", priority="high", due_in=timedelta(hours=2)),
        work_item(a, kind="risk_assessment", priority="normal", status="in_progress",
                  due_in=-timedelta(hours=1)),
        work_item(b, kind="goal_feedback", priority="normal", due_in=3 * DAY),
        work_item(b, kind="session_followup", priority="low", status="done",
                  due_in=-timedelta(hours=1)),
        work_item(theirs, kind="session_followup", priority="urgent",
                  due_in=-timedelta(hours=1)),
        work_item(former, kind="session_followup", priority="urgent",
                  due_in=timedelta(hours=1)),
    )
    body = (await client.get(DASHBOARD, headers=factory.headers(mentor))).json()
    assert body["workqueue"] == {
        "open": 3, "in_progress": 1, "overdue": 1, "due_24h": 1,
        "by_kind": {"mission_review": 1, "risk_assessment": 1, "goal_feedback": 1,
                    "session_followup": 0},
        "by_priority": {"low": 0, "normal": 2, "high": 1, "urgent": 0},
    }


async def test_at_risk_mentees_ordered_by_score_with_reasons(client, factory):
    mentor, (calm, worried, critical) = await factory.mentor_with_mentees(3)
    other_mentor, (theirs,) = await factory.mentor_with_mentees(1)
    await factory.flag(mentor, worried, severity="low")
    await factory.flag(mentor, critical, severity="critical")
    await factory.add(work_item(critical, due_in=-timedelta(hours=1)))
    await factory.flag(other_mentor, theirs, severity="critical")

    body = (await client.get(DASHBOARD, headers=factory.headers(mentor))).json()
    assert body["at_risk_mentees"] == [
        {"mentee_id": str(critical.id), "name": critical.name,
         "reasons": ["open_flag", "overdue_work"], "risk_score": 75},
        {"mentee_id": str(worried.id), "name": worried.name, "reasons": ["open_flag"],
         "risk_score": 15},
    ]


async def test_capacity_counts_this_iso_week_in_the_mentors_zone(app_db, factory):
    # Wednesday 13 March 2030, noon in Tokyo; the week runs Mon 11 to Mon 18 local.
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime(2030, 3, 13, 12, 0, tzinfo=tokyo)
    mentor, (mentee, _) = await factory.mentor_with_mentees(
        2, mentor_capacity_weekly=10,
        mentor_availability={"timezone": "Asia/Tokyo", "windows": []})
    for when, status in [
        (datetime(2030, 3, 11, 0, 30, tzinfo=tokyo), "completed"),  # Sunday 15:30 UTC
        (datetime(2030, 3, 13, 15, 0, tzinfo=tokyo), "scheduled"),
        (datetime(2030, 3, 17, 23, 0, tzinfo=tokyo), "scheduled"),
        (datetime(2030, 3, 12, 10, 0, tzinfo=tokyo), "cancelled"),
        (datetime(2030, 3, 10, 23, 0, tzinfo=tokyo), "completed"),  # previous week
        (datetime(2030, 3, 18, 0, 30, tzinfo=tokyo), "scheduled"),  # next week
    ]:
        await factory.session(mentor, mentee, starts_at=when, status=status)
    async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
        capacity = (await build_dashboard(session, mentor_id=mentor.id, now=now)).capacity
    assert (capacity.weekly_slots_used, capacity.weekly_slots_total) == (3, 10)
    assert capacity.utilization == pytest.approx(0.3)
    assert capacity.label == "3/10 weekly slots"
    assert (capacity.mentees_active, capacity.mentees_max) == (2, 20)
    assert capacity.mentees_label == "2/20 mentees"
    assert (capacity.iso_week, capacity.timezone) == ("2030-W11", "Asia/Tokyo")


class TestTodaySessions:
    @pytest.mark.parametrize(("availability_zone", "user_zone", "zone"), [
        ("America/New_York", "UTC", "America/New_York"),  # the availability's zone wins
        (None, "Asia/Kolkata", "Asia/Kolkata"),  # else the user's own zone
    ])
    async def test_today_runs_midnight_to_midnight_local(self, app_db, factory,
                                                         availability_zone, user_zone, zone):
        local = ZoneInfo(zone)
        # 10 March 2030 is a 23-hour day in New York (clocks go forward at 02:00).
        now = datetime(2030, 3, 10, 12, 0, tzinfo=local)
        availability = {"windows": []}
        if availability_zone:
            availability["timezone"] = availability_zone
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, timezone=user_zone, mentor_availability=availability)
        starts = {
            "early": datetime(2030, 3, 10, 0, 30, tzinfo=local),
            "late": datetime(2030, 3, 10, 23, 30, tzinfo=local),
            "next_day": datetime(2030, 3, 11, 0, 30, tzinfo=local),
            "day_before": datetime(2030, 3, 9, 23, 30, tzinfo=local),
        }
        ids = {key: (await factory.session(mentor, mentee, starts_at=when,
                                           duration_minutes=30)).id
               for key, when in starts.items()}
        await factory.session(mentor, mentee, starts_at=datetime(2030, 3, 10, 15, tzinfo=local),
                              status="cancelled")
        async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
            dashboard = await build_dashboard(session, mentor_id=mentor.id, now=now)
        assert [s.id for s in dashboard.today_sessions] == [ids["early"], ids["late"]]
        assert dashboard.today_sessions[0].mentee_name == mentee.name

    async def test_over_http_with_the_real_clock(self, client, factory):
        zone = ZoneInfo("Pacific/Auckland")
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, mentor_availability={"timezone": "Pacific/Auckland", "windows": []})
        today = datetime.now(zone).date()
        tomorrow = today + DAY
        late = await factory.session(mentor, mentee, duration_minutes=30, starts_at=datetime(
            today.year, today.month, today.day, 23, 30, tzinfo=zone))
        await factory.session(mentor, mentee, duration_minutes=30, starts_at=datetime(
            tomorrow.year, tomorrow.month, tomorrow.day, 0, 30, tzinfo=zone))
        body = (await client.get(DASHBOARD, headers=factory.headers(mentor))).json()
        assert [s["id"] for s in body["today_sessions"]] == [str(late.id)]
        assert body["today_sessions"][0]["meeting_url"] == late.meeting_url


async def _busy_mentor(factory, n: int):
    """A mentor whose n mentees each have a flag, items, a session today, readiness and a
    habit signal: every part of the dashboard has rows to read."""
    now = datetime.now(UTC)
    mentor, mentees = await factory.mentor_with_mentees(n, mentor_max_mentees=25)
    rows = []
    for i, mentee in enumerate(mentees):
        await factory.flag(mentor, mentee, severity="medium")
        await factory.session(mentor, mentee, starts_at=now - (i + 1) * timedelta(minutes=20),
                              duration_minutes=15, status="completed")
        rows += [
            work_item(mentee, due_in=-timedelta(hours=1)),
            work_item(mentee, kind="goal_feedback", priority="normal", due_in=2 * DAY),
            ReadinessRecord(mentee_id=mentee.id, score=50, previous_score=65,
                            recorded_at=now - DAY),
            MenteeSignal(mentee_id=mentee.id, kind="habit_streak_broken",
                         occurred_at=now - DAY),
        ]
    await factory.add(*rows)
    return mentor


async def test_constant_number_of_statements_for_1_or_20_mentees(app, client, factory):
    counts = {}
    for n in (1, 20):
        mentor = await _busy_mentor(factory, n)
        headers = factory.headers(mentor)
        with count_statements(app) as statements:
            response = await client.get(DASHBOARD, headers=headers)
        assert response.status_code == 200
        body = response.json()
        assert len(body["at_risk_mentees"]) == n
        assert body["workqueue"]["open"] == 2 * n
        # The token's identity check (auth_identity) is cached per process, not per request.
        counts[n] = len([s for s in statements if "auth_identity" not in str(s)])
    assert counts[1] == counts[20], counts
    assert counts[1] <= 2, counts  # the RLS settings, then one read


class TestRoles:
    @pytest.mark.parametrize("role", ["mentee", "director", "admin", "service"])
    async def test_other_roles_get_403(self, client, factory, role):
        user = await factory.user(role)
        response = await client.get(DASHBOARD, headers=factory.headers(user))
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "wrong_role"

    async def test_no_token_is_401(self, client):
        assert (await client.get(DASHBOARD)).status_code == 401

    async def test_mentor_token_without_a_user_is_401(self, client, factory):
        response = await client.get(DASHBOARD, headers=factory.headers(uuid.uuid4(), "mentor"))
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_token"
