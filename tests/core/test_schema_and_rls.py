"""The schema keeps its invariants and RLS gives exactly the contract's visibility,
checked with plain `select *` through the non-superuser app role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.config import APP_DB_ROLE, WORKER_DB_ROLE
from app.core.auth import Principal
from app.core.outbox import emit
from app.models import (
    Base,
    CalendarFeedToken,
    MenteeSignal,
    MissionReview,
    MissionSubmission,
    ReadinessRecord,
    SessionFeedback,
    TimeOff,
    WorkItem,
)

TABLES = sorted(Base.metadata.tables)


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig.__cause__, "sqlstate", None)


async def test_every_table_forces_rls(system_db):
    async with system_db.transaction(None) as session:
        rows = (await session.execute(text(
            "select relname, relrowsecurity, relforcerowsecurity from pg_class "
            "where relnamespace = 'public'::regnamespace and relkind = 'r' "
            "and relname <> 'alembic_version'"))).all()
    assert sorted(r.relname for r in rows) == TABLES
    assert all(r.relrowsecurity and r.relforcerowsecurity for r in rows), rows


async def test_app_role_is_unprivileged_and_owns_nothing(app_db):
    async with app_db.transaction(None) as session:
        me = (await session.execute(text(
            "select current_user as name, rolsuper, rolbypassrls, rolcreaterole "
            "from pg_roles where rolname = current_user"))).one()
        owned = await session.scalar(text(
            "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner "
            "where r.rolname = current_user"))
    assert me.name == APP_DB_ROLE
    assert not me.rolsuper and not me.rolbypassrls and not me.rolcreaterole
    assert owned == 0


async def test_worker_role_bypasses_rls_but_is_no_superuser(system_db):
    async with system_db.transaction(None) as session:
        me = (await session.execute(text(
            "select current_user as name, rolsuper, rolbypassrls from pg_roles "
            "where rolname = current_user"))).one()
    assert (me.name, me.rolsuper, me.rolbypassrls) == (WORKER_DB_ROLE, False, True)


async def test_api_role_cannot_become_the_worker_role(app_db):
    with pytest.raises(DBAPIError) as caught:
        async with app_db.transaction(None) as session:
            await session.execute(text(f"set role {WORKER_DB_ROLE}"))
    assert sqlstate(caught.value) == "42501"


@pytest.fixture
async def world(factory):
    """Two mentors with one mentee each, and a row of every mentee-owned table for both."""
    now = datetime.now(UTC)
    world = {}
    for key in ("a", "b"):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        session_row = await factory.session(mentor, mentee, status="completed",
                                            starts_at=now - timedelta(days=1))
        # A future one: its reminder and follow-up timers are armed by the database.
        await factory.session(mentor, mentee, starts_at=now + timedelta(days=3))
        flag = await factory.flag(mentor, mentee)
        submission = MissionSubmission(id=uuid.uuid4(), mentee_id=mentee.id,
                                       mission_id=uuid.uuid4(), title="m", submitted_at=now)
        await factory.add(submission)
        await factory.add(
            SessionFeedback(session_id=session_row.id, mentor_id=mentor.id,
                            mentee_id=mentee.id, rating=5),
            WorkItem(kind="mission_review", priority="high", mentee_id=mentee.id,
                     source_key=f"test:{uuid.uuid4()}", title="review", created_at=now,
                     due_at=now + timedelta(hours=48)),
            MissionReview(submission_id=submission.id, mentee_id=mentee.id,
                          mentor_id=mentor.id, decision="approved"),
            ReadinessRecord(mentee_id=mentee.id, score=50, recorded_at=now),
            MenteeSignal(mentee_id=mentee.id, kind="habit_streak_broken", occurred_at=now),
            TimeOff(mentor_id=mentor.id, starts_at=now + timedelta(days=9),
                    ends_at=now + timedelta(days=10), reason="private"),
            CalendarFeedToken(user_id=mentor.id, token_hash=uuid.uuid4().bytes),
            CalendarFeedToken(user_id=mentee.id, token_hash=uuid.uuid4().bytes),
        )
        world[key] = {"mentor": mentor, "mentee": mentee, "flag": flag,
                      "session": session_row, "submission": submission}
    return world


# table -> the column naming the mentee whose row it is (or how to find it)
MENTEE_COLUMN = {
    "assignments": "mentee_id", "sessions": "mentee_id", "session_feedback": "mentee_id",
    "work_items": "mentee_id", "mission_submissions": "mentee_id",
    "mission_reviews": "mentee_id", "flags": "mentee_id", "readiness_history": "mentee_id",
    "mentee_signals": "mentee_id",
}
# v2: a mentee reads their own mission submissions and reviews (the feedback is theirs).
MENTEE_VISIBLE = {"assignments", "sessions", "session_feedback", "mission_submissions",
                  "mission_reviews"}
# table -> the column naming the user whose own row it is (each sees only their own)
OWN_ROWS = {"mentor_time_off": "mentor_id", "calendar_feed_tokens": "user_id"}
NEVER_FOR_MENTORS_OR_MENTEES = {
    "waiting_mentees", "inbox_events", "outbox_events", "webhook_endpoints", "webhook_deliveries",
    "webhook_attempts", "matching_runs", "capacity_alerts", "programme_metrics", "audit_log",
    "programme_metrics_daily", "matching_proposals", "matching_unplaced", "mentee_preferences",
    "session_timers",
}


async def _select_all(app_db, principal: Principal | None, table: str):
    async with app_db.transaction(principal) as session:
        return (await session.execute(text(f"select * from {table}"))).mappings().all()


async def test_mentor_sees_only_own_mentees_rows_in_every_table(app_db, world):
    a, b = world["a"], world["b"]
    principal = Principal(a["mentor"].id, "mentor")
    for table in TABLES:
        rows = await _select_all(app_db, principal, table)
        if table == "users":
            assert {r["id"] for r in rows} == {a["mentor"].id, a["mentee"].id}
        elif table in MENTEE_COLUMN:
            mentees = {r[MENTEE_COLUMN[table]] for r in rows}
            assert mentees == {a["mentee"].id}, table
        elif table in OWN_ROWS:
            assert {r[OWN_ROWS[table]] for r in rows} == {a["mentor"].id}, table
        else:
            assert table in NEVER_FOR_MENTORS_OR_MENTEES
            assert rows == [], table
        assert all(b["mentee"].id not in r.values() for r in rows), table


async def test_mentee_sees_only_own_rows(app_db, world):
    a = world["a"]
    principal = Principal(a["mentee"].id, "mentee")
    for table in TABLES:
        rows = await _select_all(app_db, principal, table)
        if table == "users":
            assert {r["id"] for r in rows} == {a["mentee"].id, a["mentor"].id}
        elif table in MENTEE_VISIBLE:
            assert {r["mentee_id"] for r in rows} == {a["mentee"].id}, table
        elif table == "calendar_feed_tokens":
            assert {r["user_id"] for r in rows} == {a["mentee"].id}, table
        else:
            assert rows == [], f"a mentee must not read {table}"


async def test_no_principal_sees_nothing(app_db, world):
    for table in TABLES:
        assert await _select_all(app_db, None, table) == [], table


async def test_director_sees_everyone(app_db, world):
    principal = Principal(uuid.uuid4(), "director")
    flags = await _select_all(app_db, principal, "flags")
    assert {world["a"]["flag"].id, world["b"]["flag"].id} <= {r["id"] for r in flags}


async def test_service_reads_no_sessions_or_flags(app_db, world):
    """Of sessions, only those of users who left (deactivated, or no longer a mentee or a
    mentor: what the service must cancel) are visible to it; the world's users are active."""
    principal = Principal(uuid.uuid4(), "service")
    for table in ("session_feedback", "flags", "mission_reviews"):
        assert await _select_all(app_db, principal, table) == [], table
    visible = await _select_all(app_db, principal, "sessions")
    assert not {world[k]["session"].id for k in ("a", "b")} & {r["id"] for r in visible}
    async with app_db.transaction(Principal(uuid.uuid4(), "admin")) as session:
        for row in visible:
            assert await session.scalar(text("select pair_left(:e, :m)"),
                                        {"e": row["mentee_id"], "m": row["mentor_id"]})


async def test_mentor_cannot_write_into_another_mentors_mentee(app_db, world):
    a, b = world["a"], world["b"]
    with pytest.raises(DBAPIError) as caught:
        async with app_db.transaction(Principal(a["mentor"].id, "mentor")) as session:
            await session.execute(text(
                "insert into flags (id, mentee_id, raised_by, severity, category) "
                "values (gen_random_uuid(), :mentee, :me, 'low', 'x')"),
                {"mentee": b["mentee"].id, "me": a["mentor"].id})
    assert sqlstate(caught.value) == "42501"  # new row violates row-level security policy


async def test_settings_do_not_leak_through_the_pool(app_db, world):
    a = world["a"]
    async with app_db.transaction(Principal(a["mentor"].id, "mentor")):
        pass
    async with app_db.transaction(None) as session:
        assert await session.scalar(text("select app_user_id()")) is None
        assert (await session.execute(text("select * from flags"))).all() == []


async def test_any_principal_can_write_outbox_but_only_admin_reads_it(app_db, world):
    mentor = world["a"]["mentor"]
    async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
        event_id = await emit(session, type="flag.resolved", data={"x": 1},
                              recipients=[mentor.id])
    assert await _select_all(app_db, Principal(mentor.id, "mentor"), "outbox_events") == []
    rows = await _select_all(app_db, Principal(uuid.uuid4(), "admin"), "outbox_events")
    assert event_id in {r["id"] for r in rows}


class TestDatabaseInvariants:
    async def test_overlapping_sessions_of_one_mentor_are_refused(self, factory, world):
        a = world["a"]
        other = await factory.mentee()
        await factory.assign(a["mentor"], other)
        start = datetime.now(UTC) + timedelta(days=30)
        await factory.session(a["mentor"], a["mentee"], starts_at=start)
        with pytest.raises(IntegrityError) as caught:
            await factory.session(a["mentor"], other, starts_at=start + timedelta(minutes=30))
        assert sqlstate(caught.value) == "23P01"

    async def test_overlapping_sessions_of_one_mentee_are_refused(self, factory, world):
        a, b = world["a"], world["b"]
        start = datetime.now(UTC) + timedelta(days=31)
        await factory.session(a["mentor"], a["mentee"], starts_at=start)
        with pytest.raises(IntegrityError) as caught:
            await factory.session(b["mentor"], a["mentee"], starts_at=start)
        assert sqlstate(caught.value) == "23P01"

    async def test_back_to_back_and_cancelled_sessions_do_not_collide(self, factory, world):
        a = world["a"]
        start = datetime.now(UTC) + timedelta(days=32)
        await factory.session(a["mentor"], a["mentee"], starts_at=start, status="cancelled")
        await factory.session(a["mentor"], a["mentee"], starts_at=start)
        await factory.session(a["mentor"], a["mentee"], starts_at=start + timedelta(hours=1))

    async def test_second_active_assignment_is_refused(self, factory, world):
        with pytest.raises(IntegrityError) as caught:
            await factory.assign(world["b"]["mentor"], world["a"]["mentee"])
        assert sqlstate(caught.value) == "23505"
        assert caught.value.orig.__cause__.constraint_name == "uq_assignments_active_mentee"

    async def test_ends_at_must_match_duration(self, factory, world):
        a = world["a"]
        with pytest.raises(IntegrityError) as caught:
            await factory.session(a["mentor"], a["mentee"],
                                  starts_at=datetime.now(UTC) + timedelta(days=40),
                                  ends_at=datetime.now(UTC) + timedelta(days=41))
        assert sqlstate(caught.value) == "23514"
