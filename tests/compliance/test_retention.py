"""Retention: old inbox, published outbox, webhook attempts and audit rows go, in batches;
everything younger, and unpublished outbox rows, stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import text

from app.services.compliance.retention import purge_expired
from tests.support.harness import _plain_dsn

NOW = datetime.now(UTC)
OLD, RECENT = NOW - timedelta(days=800), NOW - timedelta(hours=1)


async def _seed(system_db, superuser_dsn: str) -> dict[str, list[uuid.UUID]]:
    ids = {name: [uuid.uuid4() for _ in range(5)] for name in
           ("inbox_old", "inbox_new", "outbox_old", "outbox_unpublished", "outbox_new")}
    async with system_db.transaction(None) as session:
        for key, at in (("inbox_old", OLD), ("inbox_new", RECENT)):
            for event_id in ids[key]:
                await session.execute(text(
                    "insert into inbox_events (id, type, received_at) values (:id, 'x', :at)"),
                    {"id": event_id, "at": at})
        for key, published in (("outbox_old", OLD), ("outbox_unpublished", None),
                               ("outbox_new", RECENT)):
            for event_id in ids[key]:
                await session.execute(text(
                    "insert into outbox_events (id, type, occurred_at, data, refresh_priority,"
                    " created_at, published_at) values (:id, 'x', :at, '{}', 'normal', :at,"
                    " :published)"), {"id": event_id, "at": OLD, "published": published})
        mentee_id = uuid.uuid4()
        await session.execute(text(
            "insert into users (id, email, name, role) values (:id, :email, 'Old Timer', "
            "'mentee')"), {"id": mentee_id, "email": f"{mentee_id}@example.org"})
    connection = await asyncpg.connect(superuser_dsn)  # backdate its audit entry
    try:
        await connection.execute("update audit_log set at = $1 where target_id = $2",
                                 OLD, str(mentee_id))
    finally:
        await connection.close()
    ids["audit_old"] = [mentee_id]
    return ids


async def _count(system_db, sql: str, ids) -> int:
    async with system_db.transaction(None) as session:
        return (await session.execute(text(sql), {"ids": [str(i) for i in ids]})).scalar_one()


async def test_purge_removes_only_what_is_older_than_its_setting(system_db, settings, servers):
    ids = await _seed(system_db, _plain_dsn(servers.database_url))
    local = settings.model_copy(update={"retention_batch": 2})  # several batches each
    removed = await purge_expired(system_db, settings=local, now=NOW)
    assert removed["inbox_events"] >= 5 and removed["outbox_events"] >= 5
    assert removed["audit_log"] >= 1

    inbox = "select count(*) from inbox_events where id::text = any(:ids)"
    outbox = "select count(*) from outbox_events where id::text = any(:ids)"
    assert await _count(system_db, inbox, ids["inbox_old"]) == 0
    assert await _count(system_db, inbox, ids["inbox_new"]) == 5
    assert await _count(system_db, outbox, ids["outbox_old"]) == 0
    assert await _count(system_db, outbox, ids["outbox_unpublished"]) == 5  # never lost
    assert await _count(system_db, outbox, ids["outbox_new"]) == 5
    assert await _count(system_db, "select count(*) from audit_log where target_id = any(:ids)",
                        ids["audit_old"]) == 0

    again = await purge_expired(system_db, settings=local, now=NOW)
    assert again["inbox_events"] == 0 and again["audit_log"] == 0
