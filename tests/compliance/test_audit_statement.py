"""The per-statement audit triggers (migration 0019) write the entries migration 0008's row
trigger wrote: the 0008 function, installed beside them as a reference writing to its own
table, sees the same changes, and both sets of entries must be equal (less the two
documented differences: no heartbeat entries, preferences targeted at the mentee)."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text

from tests.support.harness import ROOT, _plain_dsn

REFERENCE_TRIGGER = "zz_audit_reference"


def _audit_row_0008() -> str:
    path = ROOT / "migrations" / "versions" / "0008_audit_trail.py"
    spec = importlib.util.spec_from_file_location("audit_0008", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return (module.AUDIT_ROW.replace("function audit_row()", "function audit_row_reference()")
            .replace("insert into audit_log", "insert into audit_reference"))


@pytest.fixture
async def reference(servers):
    """0008's row trigger on every audited table, writing to `audit_reference`."""
    connection = await asyncpg.connect(_plain_dsn(servers.database_url))
    tables = await connection.fetch(
        "select distinct tgrelid::regclass::text as name from pg_trigger "
        "where tgname = 'audit_insert'")
    await connection.execute("create table audit_reference (like audit_log including all)")
    await connection.execute(_audit_row_0008())
    for row in tables:
        await connection.execute(
            f"create trigger {REFERENCE_TRIGGER} after insert or update or delete on "
            f"{row['name']} for each row execute function audit_row_reference()")
    try:
        yield connection, [row["name"] for row in tables]
    finally:
        for row in tables:
            await connection.execute(f"drop trigger {REFERENCE_TRIGGER} on {row['name']}")
        await connection.execute("drop table audit_reference")
        await connection.execute("drop function audit_row_reference()")
        await connection.close()


def _entries(rows) -> Counter:
    return Counter((str(r["actor_id"]), r["actor_role"], r["action"], r["target_type"],
                    r["target_id"], json.dumps(json.loads(r["changes"]), sort_keys=True),
                    r["request_id"]) for r in rows)


async def _workload(client, factory, system_db) -> None:
    """Inserts, updates (one field, several, nothing, only timestamps), deletes with
    cascades, upserts, bulk statements, JSON with nested nulls, secrets: by the API as
    several roles and by the workers."""
    mentor, mentees = await factory.mentor_with_mentees(3, languages=["en", "fr"])
    admin = await factory.user("admin")
    flag = await client.post("/api/v1/mentor/flags", headers=factory.headers(mentor) | {
        "X-Request-ID": uuid.uuid4().hex}, json={"mentee_id": str(mentees[0].id),
                                                 "severity": "high", "category": "engagement",
                                                 "note": "Quiet \"lately\" \\ é"})
    assert flag.status_code == 201, flag.text
    resolved = await client.patch(f"/api/v1/mentor/flags/{flag.json()['id']}",
                                  headers=factory.headers(mentor),
                                  json={"status": "resolved", "resolution": "Talked"})
    assert resolved.status_code == 200, resolved.text
    for body in ({"specialties": ["python"], "max_timezone_offset_hours": 3},
                 {"specialties": ["go"], "languages": ["es"]}):  # insert, then upsert
        stated = await client.put("/api/v1/mentee/preferences",
                                  headers=factory.headers(mentees[1]), json=body)
        assert stated.status_code == 200, stated.text
    hook = await client.post("/api/v1/admin/webhooks", headers=factory.headers(admin),
                             json={"url": "https://hooks.example.test/in"})
    assert hook.status_code == 201, hook.text
    await factory.session(mentor, mentees[2])
    async with system_db.transaction(None) as session:
        ids = [m.id for m in mentees]
        await session.execute(text(
            "update users set tier = 'T' || length(name), mentor_availability = "
            "'{\"timezone\": \"UTC\", \"note\": null, \"windows\": [null, {\"a\": null}]}' "
            "where id = any(:ids)"), {"ids": ids})
        await session.execute(text("update users set updated_at = now() where id = any(:ids)"),
                              {"ids": ids})  # only a timestamp: no entry
        await session.execute(text("update users set name = name where id = any(:ids)"),
                              {"ids": ids})  # nothing changed: no entry
        await session.execute(text(
            "insert into matching_runs (id, job_id, status, dry_run, weights, scope) values "
            "(:id, :job, 'running', true, '{\"load\": 0.5}', "
            "'{\"mentee_ids\": null, \"mentor_ids\": null}')"),
            {"id": uuid.uuid4(), "job": f"job-{uuid.uuid4()}"})
        await session.execute(text(
            "update matching_runs set status = 'done', heartbeat_at = now(), "
            "finished_at = :at where status = 'running'"), {"at": datetime.now(UTC)})
        await session.execute(text(
            "update assignments set ended_at = :at, end_reason = 'test' "
            "where mentee_id = any(:ids)"),
            {"ids": ids[:2], "at": datetime.now(UTC) - timedelta(minutes=1)})
        await session.execute(text("delete from users where id = :id"), {"id": ids[2]})
    # Bulk statements (more than 64 rows: the per-table statement, not the few-rows one).
    async with system_db.transaction(None) as session:
        bulk = [uuid.uuid4() for _ in range(80)]
        await session.execute(text(
            "insert into users (id, email, name, role, interests, mentor_availability) "
            "select i, i::text || '@bulk.test', 'Bulk \"' || i::text, 'mentee', "
            "array['x', null], '{\"timezone\": null, \"windows\": [{\"a\": null}]}' "
            "from unnest(cast(:ids as uuid[])) i"), {"ids": bulk})
        await session.execute(text(
            "insert into assignments (id, mentee_id, mentor_id, source, score, reasons) "
            "select gen_random_uuid(), i, :mentor, 'auto', 0.5, array['a', 'b'] "
            "from unnest(cast(:ids as uuid[])) i"), {"ids": bulk, "mentor": mentor.id})
        await session.execute(text(
            "update users set tier = 'B', name = name where id = any(:ids)"), {"ids": bulk})
        await session.execute(text("update users set name = name where id = any(:ids)"),
                              {"ids": bulk})
        await session.execute(text(
            "update assignments set ended_at = now(), end_reason = 'bulk' "
            "where mentee_id = any(:ids)"), {"ids": bulk})
        await session.execute(text("delete from users where id = any(:ids)"), {"ids": bulk})


async def test_entries_match_the_row_trigger_of_migration_0008(reference, client, factory,
                                                               system_db):
    connection, tables = reference
    assert {"users", "assignments", "sessions", "flags", "mentee_preferences",
            "matching_runs", "webhook_endpoints", "work_items"} <= set(tables)
    start = await connection.fetchval("select coalesce(max(id), 0) from audit_log")
    await _workload(client, factory, system_db)

    new = await connection.fetch("select * from audit_log where id > $1", start)
    old = await connection.fetch("select * from audit_reference")
    assert len(old) > 400
    expected = []
    for row in old:
        entry = dict(row)
        changes = json.loads(entry["changes"])
        if entry["target_type"] == "matching_runs":
            changes.pop("heartbeat_at", None)  # no longer audited
            if not changes and entry["action"].endswith(".update"):
                continue
        if entry["target_type"] == "mentee_preferences":
            assert entry["target_id"] is None  # 0008 wrote no target here
            entry["target_id"] = next(
                str(r["target_id"]) for r in new if r["target_type"] == "mentee_preferences")
        entry["changes"] = json.dumps(changes)
        expected.append(entry)
    assert _entries(new) == _entries(expected)
    # Secrets, nested nulls and the no-op updates were part of it.
    assert not any("secret" in r["changes"] for r in new)
    assert any('"windows": [null, {}]' in r["changes"] for r in new)


async def test_a_heartbeat_alone_writes_no_entry(system_db):
    job = f"job-{uuid.uuid4()}"
    async with system_db.transaction(None) as session:
        run_id = (await session.execute(text(
            "insert into matching_runs (id, job_id, status, heartbeat_at) "
            "values (gen_random_uuid(), :job, 'running', now()) returning id"),
            {"job": job})).scalar_one()
    for _ in range(3):
        async with system_db.transaction(None) as session:
            await session.execute(text(
                "update matching_runs set heartbeat_at = clock_timestamp() where job_id = :j"),
                {"j": job})
    async with system_db.transaction(None) as session:
        await session.execute(text(
            "update matching_runs set status = 'done', heartbeat_at = null where job_id = :j"),
            {"j": job})
        actions = (await session.execute(text(
            "select action, changes from audit_log where target_id = :id order by id"),
            {"id": str(run_id)})).all()
    assert [a.action for a in actions] == ["matching_runs.insert", "matching_runs.update"]
    assert actions[1].changes == {"status": {"before": "running", "after": "done"}}
