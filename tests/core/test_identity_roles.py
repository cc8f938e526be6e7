"""Defence in depth in Postgres (finding F8, migration 0017): connected as `mentorship_app`,
each identity set by hand as a request would (or as an injected statement might try), every
forbidden write fails in the database itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.config import APP_DB_ROLE, IDENTITY_DB_ROLES

EMIT = ("select outbox_emit(gen_random_uuid(), 'session.scheduled', now(), "
        "'{\"x\": 1}'::jsonb, 'high', cast(:recipients as uuid[]))")


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig.__cause__, "sqlstate", None)


@asynccontextmanager
async def as_identity(app_db, role: str | None, user_id: uuid.UUID | None,
                      ) -> AsyncIterator:
    """A raw transaction as mentorship_app: SET LOCAL ROLE to the identity's role (None:
    stay plain mentorship_app) and `app.user_id`, by hand."""
    async with app_db.engine.connect() as connection, connection.begin():
        if role is not None:
            await connection.execute(text(f"set local role {IDENTITY_DB_ROLES[role]}"))
        if user_id is not None:
            await connection.execute(text("select set_config('app.user_id', :u, true)"),
                                     {"u": str(user_id)})
        yield connection


async def refused(app_db, role, user_id, sql: str, params: dict | None = None) -> str:
    """Runs `sql` as the identity; returns the SQLSTATE it failed with."""
    with pytest.raises(DBAPIError) as caught:
        async with as_identity(app_db, role, user_id) as connection:
            await connection.execute(text(sql), params or {})
    return sqlstate(caught.value)


async def updated(app_db, role, user_id, sql: str, params: dict | None = None) -> int:
    async with as_identity(app_db, role, user_id) as connection:
        return (await connection.execute(text(sql), params or {})).rowcount


@pytest.fixture
async def people(factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    other_mentor, (other_mentee,) = await factory.mentor_with_mentees(1)
    director = await factory.user("director")
    return {"mentor": mentor, "mentee": mentee, "other_mentor": other_mentor,
            "other_mentee": other_mentee, "director": director}


async def test_the_connection_is_mentorship_app_and_may_take_each_identity(app_db):
    async with as_identity(app_db, None, None) as connection:
        assert await connection.scalar(text("select session_user")) == APP_DB_ROLE
    for role, db_role in IDENTITY_DB_ROLES.items():
        async with as_identity(app_db, role, uuid.uuid4()) as connection:
            row = (await connection.execute(text(
                "select current_user, app_role(), app_user_id() is not null"))).one()
        assert tuple(row) == (db_role, role, True)


async def test_setting_app_role_alone_grants_nothing(app_db, people):
    """The F8 proof: plain mentorship_app with app.role = admin and an admin's id."""
    admin = uuid.uuid4()
    async with as_identity(app_db, None, admin) as connection:
        await connection.execute(text("select set_config('app.role', 'admin', true)"))
        assert await connection.scalar(text("select app_role()")) is None
        assert await connection.scalar(text("select app_user_id()")) is None
        for table in ("users", "flags", "sessions", "webhook_endpoints", "outbox_events"):
            assert await connection.scalar(text(f"select count(*) from {table}")) == 0, table
    assert await updated(app_db, None, people["mentee"].id,
                         "update users set role = 'admin' where id = :id",
                         {"id": people["mentee"].id}) == 0
    # A mentee who also sets app.role is still a mentee.
    async with as_identity(app_db, "mentee", people["mentee"].id) as connection:
        await connection.execute(text("select set_config('app.role', 'admin', true)"))
        assert await connection.scalar(text("select app_role()")) == "mentee"
        assert await connection.scalar(text("select count(*) from flags")) == 0


@pytest.mark.parametrize("change", [
    "role = 'admin'", "role = 'director'", "id = gen_random_uuid()", "email = 'x@evil.test'",
    "tier = '7'", "is_mentor = true", "mentor_capacity_weekly = 99",
    "mentor_max_mentees = 1",
])
async def test_a_mentee_cannot_change_who_they_are(app_db, people, change):
    mentee = people["mentee"]
    assert await refused(app_db, "mentee", mentee.id,
                         f"update users set {change} where id = :id",
                         {"id": mentee.id}) == "42501"


@pytest.mark.parametrize("change", [
    "role = 'admin'", "id = gen_random_uuid()", "email = 'x@evil.test'", "tier = '7'",
    "is_mentor = false",
])
async def test_a_mentor_cannot_change_who_they_are(app_db, people, change):
    mentor = people["mentor"]
    assert await refused(app_db, "mentor", mentor.id,
                         f"update users set {change} where id = :id",
                         {"id": mentor.id}) == "42501"


async def test_a_mentor_edits_own_capacity_within_the_limits(app_db, people, system_db):
    mentor = people["mentor"]
    assert await updated(app_db, "mentor", mentor.id,
                         "update users set mentor_capacity_weekly = 12, mentor_max_mentees = 15,"
                         " mentor_specialties = '{python}' where id = :id",
                         {"id": mentor.id}) == 1
    for change in ("mentor_capacity_weekly = 169", "mentor_max_mentees = 1001",
                   "mentor_capacity_weekly = -1"):
        assert await refused(app_db, "mentor", mentor.id,
                             f"update users set {change} where id = :id",
                             {"id": mentor.id}) == "23514", change


@pytest.mark.parametrize("role", ["mentee", "mentor"])
async def test_nobody_else_s_row(app_db, people, system_db, role):
    """Another user's row: RLS does not even let the UPDATE see it (the mentor's own mentee
    included: visible, not writable)."""
    me = people[role]
    for victim in ("other_mentor", "other_mentee", "director",
                   "mentee" if role == "mentor" else "mentor"):
        target = people[victim]
        assert await updated(app_db, role, me.id,
                             "update users set name = 'pwned', role = 'admin' where id = :id",
                             {"id": target.id}) == 0, victim
        async with system_db.transaction(None) as session:
            row = (await session.execute(text("select name, role from users where id = :id"),
                                         {"id": target.id})).one()
        assert row.name != "pwned" and row.role == target.role


OUTBOX_INSERT = ("insert into outbox_events (id, type, occurred_at, data, refresh_priority, "
                 "recipients) values (gen_random_uuid(), 'mission.reviewed', now(), '{}', "
                 "'high', array[cast(:u as uuid)])")


@pytest.mark.parametrize("role", ["mentee", "mentor", "director", "admin", "service", None])
async def test_no_identity_inserts_into_the_outbox_or_the_inbox(app_db, people, role):
    """Staff (director, admin) may insert outbox rows directly (migration 0018: set-based
    emitters such as a matching publish); they may address anyone through outbox_emit()
    anyway. Everyone else only through outbox_emit(); nobody writes the inbox directly."""
    user = people["mentee"].id
    inbox = "insert into inbox_events (id, type) values (gen_random_uuid(), 'x.y')"
    if role not in ("director", "admin"):
        assert await refused(app_db, role, user, OUTBOX_INSERT, {"u": str(user)}) == "42501"
    assert await refused(app_db, role, user, inbox) == "42501"
    assert await refused(app_db, role, user, "update outbox_events set data = '{}'") == "42501"


async def test_a_mentee_or_mentor_addresses_only_their_own_relationships(app_db, people):
    mentor, mentee, director = people["mentor"], people["mentee"], people["director"]
    strangers = [people["other_mentor"].id, people["other_mentee"].id, uuid.uuid4()]
    for role, me, circle in (("mentee", mentee, [mentee.id, mentor.id, director.id]),
                             ("mentor", mentor, [mentor.id, mentee.id, director.id])):
        async with as_identity(app_db, role, me.id) as connection:
            await connection.execute(text(EMIT), {"recipients": [str(u) for u in circle]})
        for stranger in strangers:
            assert await refused(app_db, role, me.id, EMIT,
                                 {"recipients": [str(me.id), str(stranger)]}) == "42501"


async def test_a_mentor_may_notify_the_previous_mentor_of_their_mentee(
        app_db, people, factory, system_db):
    """(A flag raised by the previous mentor, resolved by the current one.)"""
    from sqlalchemy import update

    from app.models import Assignment

    mentee, previous, current = people["mentee"], people["mentor"], people["other_mentor"]
    async with system_db.transaction(None) as session:
        await session.execute(update(Assignment).where(
            Assignment.mentee_id == mentee.id, Assignment.ended_at.is_(None)
        ).values(ended_at=datetime.now(UTC), end_reason="reassigned"))
    await factory.assign(current, mentee)
    async with as_identity(app_db, "mentor", current.id) as connection:
        await connection.execute(text(EMIT), {"recipients": [str(current.id), str(previous.id),
                                                             str(mentee.id)]})
    stranger = await factory.mentee()
    assert await refused(app_db, "mentor", current.id, EMIT,
                         {"recipients": [str(stranger.id)]}) == "42501"


async def test_outbox_emit_needs_an_identity(app_db, people):
    assert await refused(app_db, None, people["mentee"].id, EMIT,
                         {"recipients": [str(people["mentee"].id)]}) == "42501"


async def test_only_service_callers_record_inbound_events(app_db, people):
    record = ("select * from inbox_record(array[cast(:id as uuid)], array['user.upserted'], "
              "array['test'], array[now()])")
    for role in ("service", "admin"):
        async with as_identity(app_db, role, uuid.uuid4()) as connection:
            event_id = uuid.uuid4()
            assert list(await connection.scalars(text(record), {"id": str(event_id)})) == [
                event_id]
            # A repeat is recorded once.
            assert list(await connection.scalars(text(record), {"id": str(event_id)})) == []
    for role in ("mentee", "mentor", "director", None):
        assert await refused(app_db, role, people["mentee"].id, record,
                             {"id": str(uuid.uuid4())}) == "42501", role


async def test_staff_still_change_roles(app_db, people, system_db):
    mentee = people["other_mentee"]
    assert await updated(app_db, "director", people["director"].id,
                         "update users set tier = 'gold' where id = :id", {"id": mentee.id}) == 1


async def test_identity_roles_hold_what_mentorship_app_holds(app_db):
    """Later migrations granting to mentorship_app must grant the identity roles too (or
    their routes fail with permission denied)."""
    async with as_identity(app_db, None, None) as connection:
        rows = (await connection.execute(text("""
            select r.role, t.relname, p.privilege
              from unnest(cast(:roles as text[])) r(role)
             cross join pg_class t
             cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p(privilege)
             where t.relnamespace = 'public'::regnamespace and t.relkind = 'r'
               and t.relname not in ('alembic_version', 'outbox_events', 'inbox_events')
               and has_table_privilege(:app, t.oid, p.privilege)
               and not has_table_privilege(r.role, t.oid, p.privilege)
            union all
            select r.role, f.oid::regprocedure::text, 'EXECUTE'
              from unnest(cast(:roles as text[])) r(role)
             cross join pg_proc f
             where f.pronamespace = 'public'::regnamespace
               and has_function_privilege(:app, f.oid, 'EXECUTE')
               and not has_function_privilege(r.role, f.oid, 'EXECUTE')
        """), {"roles": list(IDENTITY_DB_ROLES.values()), "app": APP_DB_ROLE})).all()
    assert rows == []


async def test_requests_take_their_identity_role(app_db, people):
    """The request transaction's setup (one statement) puts the identity's role in force."""
    from app.core.auth import Principal

    async with app_db.transaction(Principal(people["mentee"].id, "mentee")) as session:
        row = (await session.execute(text("select current_user, app_role(), app_user_id()"))
               ).one()
    assert tuple(row) == ("mentorship_mentee", "mentee", people["mentee"].id)


async def test_no_definer_function_trusts_the_app_role_setting(system_db):
    """Erasure and audit redaction check the identity role in force, not `app.role`."""
    async with system_db.transaction(None) as session:
        trusting = list(await session.scalars(text(
            "select proname from pg_proc where pronamespace = 'public'::regnamespace "
            "and prosrc like '%current_setting(''app.role''%<> ''admin''%'")))
        bound = list(await session.scalars(text(
            "select proname from pg_proc where pronamespace = 'public'::regnamespace "
            "and prosrc like '%public.app_role(), '''') <> ''admin''%'")))
    assert trusting == [] and bound
