"""The audit trail: written by the database with every change, append-only, read by admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.config import IDENTITY_DB_ROLES
from app.core.db import SET_PRINCIPAL

AUDIT = "/api/v1/admin/audit"
FLAGS = "/api/v1/mentor/flags"


async def _raise_flag(client, factory, mentor, mentee, request_id: str) -> dict:
    response = await client.post(FLAGS, headers=factory.headers(mentor) | {
        "X-Request-ID": request_id}, json={"mentee_id": str(mentee.id), "severity": "high",
                                           "category": "engagement", "note": "Quiet lately"})
    assert response.status_code == 201, response.text
    return response.json()


class TestWrittenWithTheChange:
    async def test_a_mentors_flag_is_audited_with_actor_role_request_and_fields(
            self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        admin = await factory.user("admin")
        request_id = uuid.uuid4().hex
        flag = await _raise_flag(client, factory, mentor, mentee, request_id)

        response = await client.get(AUDIT, headers=factory.headers(admin),
                                    params={"target_id": flag["id"]})
        assert response.status_code == 200, response.text
        [entry] = response.json()["items"]
        assert entry["action"] == "flags.insert" and entry["target_type"] == "flags"
        assert (entry["actor_id"], entry["actor_role"]) == (str(mentor.id), "mentor")
        assert entry["request_id"] == request_id
        assert entry["changes"]["severity"] == {"after": "high"}
        assert entry["changes"]["note"] == {"after": "Quiet lately"}

        resolved = await client.patch(f"{FLAGS}/{flag['id']}", headers=factory.headers(mentor),
                                      json={"status": "resolved", "resolution": "Talked"})
        assert resolved.status_code == 200, resolved.text
        response = await client.get(AUDIT, headers=factory.headers(admin),
                                    params={"target_id": flag["id"], "action": "flags.update"})
        [update] = response.json()["items"]
        assert update["changes"]["status"] == {"before": "open", "after": "resolved"}
        assert "severity" not in update["changes"]  # only what changed

    async def test_worker_changes_are_the_systems(self, factory, system_db):
        mentee = await factory.user("mentee")
        async with system_db.transaction(None) as session:
            await session.execute(text("update users set tier = 'X9' where id = :id"),
                                  {"id": mentee.id})
            row = (await session.execute(text(
                "select actor_id, actor_role, changes from audit_log where target_id = :id "
                "and action = 'users.update' order by id desc limit 1"),
                {"id": str(mentee.id)})).one()
        assert row.actor_id is None and row.actor_role == "system"
        assert row.changes["tier"]["after"] == "X9"

    async def test_webhook_secrets_never_reach_the_trail(self, client, factory, system_db):
        admin = await factory.user("admin")
        created = await client.post("/api/v1/admin/webhooks", headers=factory.headers(admin),
                                    json={"url": "https://hooks.example.test/in"})
        assert created.status_code == 201, created.text
        async with system_db.transaction(None) as session:
            changes = (await session.execute(text(
                "select changes from audit_log where target_id = :id"),
                {"id": created.json()["id"]})).scalar_one()
        assert "secret" not in changes and "whsec_" not in str(changes)


class TestReading:
    async def test_filters_and_cursor(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        admin = await factory.user("admin")
        for _ in range(3):
            await _raise_flag(client, factory, mentor, mentee, uuid.uuid4().hex)
        params = {"actor_id": str(mentor.id), "action": "flags.insert", "limit": 2}
        first = (await client.get(AUDIT, headers=factory.headers(admin), params=params)).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        second = (await client.get(AUDIT, headers=factory.headers(admin),
                                   params=params | {"cursor": first["next_cursor"]})).json()
        assert len(second["items"]) == 1 and second["next_cursor"] is None
        ids = [e["id"] for e in first["items"] + second["items"]]
        assert ids == sorted(ids, reverse=True)
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        later = await client.get(AUDIT, headers=factory.headers(admin),
                                 params={"actor_id": str(mentor.id), "from": future})
        assert later.json()["items"] == []

    @pytest.mark.parametrize("role", ["mentor", "mentee", "director", "service"])
    async def test_only_admins_read_it(self, client, factory, role):
        caller = await factory.user(role)
        response = await client.get(AUDIT, headers=factory.headers(caller))
        assert response.status_code == 403
        assert response.json()["code"] == "wrong_role"

    async def test_forged_cursor_is_422(self, client, factory):
        admin = await factory.user("admin")
        for cursor in ("eyJpZCI6ICJ4In0", "not-a-cursor", "eyJpZCI6IC0xfQ"):
            response = await client.get(AUDIT, headers=factory.headers(admin),
                                        params={"cursor": cursor})
            assert response.status_code == 422, (cursor, response.text)


class TestAppendOnly:
    """No application role may write, change or delete audit entries: not the API's
    (`mentorship_app`, even as admin) nor the workers' (`mentorship_worker`, BYPASSRLS)."""

    STATEMENTS = [
        "update audit_log set action = 'forged'",
        "delete from audit_log",
        "truncate audit_log",
        "insert into audit_log (actor_role, action, target_type, changes) "
        "values ('admin', 'forged', 'users', '{}')",
    ]

    @pytest.mark.parametrize("statement", STATEMENTS)
    @pytest.mark.parametrize("engine", ["app_db", "system_db"])
    async def test_writes_are_refused(self, app_db, system_db, factory, engine, statement):
        await factory.user("mentee")  # at least one entry exists
        database = {"app_db": app_db, "system_db": system_db}[engine]
        async with database.engine.connect() as connection:
            await connection.execute(text(
                "select set_config('app.role', 'admin', true), "
                "set_config('app.user_id', :id, true)"), {"id": str(uuid.uuid4())})
            with pytest.raises(DBAPIError) as caught:
                await connection.execute(text(statement))
            assert "permission denied" in str(caught.value).lower()
            await connection.rollback()

    @pytest.mark.parametrize("statement", STATEMENTS)
    @pytest.mark.parametrize("identity", ["mentee", "mentor", "director", "admin", "service"])
    async def test_identity_roles_cannot_write_either(self, app_db, factory, identity,
                                                      statement):
        """Each request's own database role (SET LOCAL ROLE, migration 0017), the trigger
        functions that write the trail notwithstanding."""
        user = await factory.user(identity)
        async with app_db.engine.connect() as connection:
            await connection.execute(SET_PRINCIPAL, {
                "db_role": IDENTITY_DB_ROLES[identity], "user_id": str(user.id),
                "role": identity, "request_id": ""})
            with pytest.raises(DBAPIError) as caught:
                await connection.execute(text(statement))
            assert "permission denied" in str(caught.value).lower()
            await connection.rollback()

    async def test_redaction_needs_an_admin_transaction(self, app_db):
        async with app_db.engine.connect() as connection:
            await connection.execute(text("select set_config('app.role', 'mentor', true)"))
            with pytest.raises(DBAPIError):
                await connection.execute(text(
                    "select erase_personal_data(gen_random_uuid(), array['x@example.org'])"))
            await connection.rollback()


class TestExport:
    async def test_export_holds_the_users_rows_and_is_admin_only(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        admin = await factory.user("admin")
        flag = await _raise_flag(client, factory, mentor, mentee, uuid.uuid4().hex)
        response = await client.get(f"/api/v1/admin/users/{mentee.id}/export",
                                    headers=factory.headers(admin))
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert [u["email"] for u in data["users"]] == [mentee.email]
        assert [a["mentor_id"] for a in data["assignments"]] == [str(mentor.id)]
        assert [f["id"] for f in data["flags"]] == [flag["id"]]
        assert any(e["target_id"] == str(mentee.id) for e in data["audit_log"])

        waiting = await factory.mentee()  # on the waiting list from the start
        response = await client.get(f"/api/v1/admin/users/{waiting.id}/export",
                                    headers=factory.headers(admin))
        assert [w["mentee_id"] for w in response.json()["data"]["waiting_mentees"]] == [
            str(waiting.id)]

        missing = await client.get(f"/api/v1/admin/users/{uuid.uuid4()}/export",
                                   headers=factory.headers(admin))
        assert missing.status_code == 404
        director = await factory.user("director")
        assert (await client.get(f"/api/v1/admin/users/{mentee.id}/export",
                                 headers=factory.headers(director))).status_code == 403

    async def test_a_mentors_time_off_alerts_and_feed_without_its_secret(
            self, client, factory, system_db):
        mentor = await factory.mentor()
        admin = await factory.user("admin")
        starts = datetime.now(UTC) + timedelta(days=3)
        async with system_db.transaction(None) as session:
            await session.execute(text(
                "insert into mentor_time_off (id, mentor_id, starts_at, ends_at, reason) "
                "values (gen_random_uuid(), :m, :s, :e, 'Conference')"),
                {"m": mentor.id, "s": starts, "e": starts + timedelta(days=2)})
            await session.execute(text(
                "insert into capacity_alerts (mentor_id, iso_week, weekly_slots_used, "
                "weekly_slots_total, mentees_active, mentees_max) "
                "values (:m, '2026-W49', 11, 10, 3, 20)"), {"m": mentor.id})
            await session.execute(text(
                "insert into calendar_feed_tokens (user_id, token_hash) "
                "values (:m, '\\xdeadbeef')"), {"m": mentor.id})
        response = await client.get(f"/api/v1/admin/users/{mentor.id}/export",
                                    headers=factory.headers(admin))
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert [t["reason"] for t in data["mentor_time_off"]] == ["Conference"]
        assert [a["iso_week"] for a in data["capacity_alerts"]] == ["2026-W49"]
        [feed] = data["calendar_feed_tokens"]
        assert feed["user_id"] == str(mentor.id) and "token_hash" not in feed
        assert "deadbeef" not in response.text
