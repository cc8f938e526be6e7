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


async def _seed_run(system_db, *, finished_at: datetime | None, dry_run: bool = True,
                    published: bool = False, proposals: int = 5) -> uuid.UUID:
    """A finished run with `proposals` proposals and two unplaced mentees (the trigger of
    migrations 0027/0029 writes their `matching_unplaced` rows). `finished_at` None: the
    database's clock now (after every run finished before it)."""
    run_id = uuid.uuid4()
    async with system_db.transaction(None) as session:
        await session.execute(text(
            "insert into matching_runs (id, job_id, status, dry_run, finished_at, unplaced, "
            "published_at) values (:id, :job, 'done', :dry, coalesce(:at, clock_timestamp()), "
            "cast(:unplaced as jsonb), :published)"),
            {"id": run_id, "job": f"match-{run_id}", "dry": dry_run, "at": finished_at,
             "unplaced": f'{{"{uuid.uuid4()}": "no_mentor", "{uuid.uuid4()}": "full"}}',
             "published": finished_at if published else None})
        for _ in range(proposals):
            await session.execute(text(
                "insert into matching_proposals (run_id, mentee_id, mentor_id, fit, specialty,"
                " timezone, load, language, preference) values (:run, :mentee, :mentor, 0.5,"
                " 0, 0, 0, 0, 0)"),
                {"run": run_id, "mentee": uuid.uuid4(), "mentor": uuid.uuid4()})
    return run_id


async def _run_state(system_db, run_id: uuid.UUID) -> tuple[int, int, int, bool]:
    """(proposals, matching_unplaced rows, entries of the `unplaced` map, expired)."""
    async with system_db.transaction(None) as session:
        row = (await session.execute(text(
            "select (select count(*) from matching_proposals where run_id = r.id),"
            " (select count(*) from matching_unplaced where run_id = r.id),"
            " (select count(*) from jsonb_object_keys(r.unplaced)),"
            " r.proposals_expired_at is not null from matching_runs r where r.id = :id"),
            {"id": run_id})).one()
    return tuple(row)


async def test_old_unpublished_dry_runs_lose_their_proposals_in_batches(system_db, settings):
    days = settings.retention_matching_dry_runs_days
    old = NOW - timedelta(days=days, hours=1)
    expiring = await _seed_run(system_db, finished_at=old)
    published = await _seed_run(system_db, finished_at=old, published=True)
    assigning = await _seed_run(system_db, finished_at=old, dry_run=False, proposals=0)
    recent = await _seed_run(system_db, finished_at=NOW - timedelta(days=days - 1))
    batches: list[tuple[str, int]] = []
    local = settings.model_copy(update={"retention_batch": 2})

    removed = await purge_expired(system_db, settings=local, now=NOW,
                                  on_batch=lambda table, n, _: batches.append((table, n)))

    assert await _run_state(system_db, expiring) == (0, 0, 2, True)  # the map stays
    assert await _run_state(system_db, published) == (5, 2, 2, False)
    assert await _run_state(system_db, assigning) == (0, 2, 2, False)
    assert await _run_state(system_db, recent) == (5, 2, 2, False)
    assert removed["matching_dry_runs"] >= 1 and removed["matching_proposals"] >= 5
    assert max(n for table, n in batches if table == "matching_proposals") == 2
    again = await purge_expired(system_db, settings=local, now=NOW)
    assert (again["matching_dry_runs"], again["matching_proposals"]) == (0, 0)


async def test_the_latest_finished_run_keeps_its_proposals_and_reasons(system_db, settings):
    """The waiting list's `last_match_reason` reads the latest finished run's rows: that run
    stays whatever its age; the one before it, as old, expires."""
    before = await _seed_run(system_db, finished_at=None)
    latest = await _seed_run(system_db, finished_at=None)
    days = settings.retention_matching_dry_runs_days
    only_dry_runs = settings.model_copy(update={  # nothing else is old enough to go
        "retention_inbox_days": 100_000, "retention_outbox_days": 100_000,
        "retention_webhook_attempts_days": 100_000, "retention_audit_days": 100_000})

    await purge_expired(system_db, settings=only_dry_runs,
                        now=datetime.now(UTC) + timedelta(days=days + 1))

    assert await _run_state(system_db, latest) == (5, 2, 2, False)
    assert await _run_state(system_db, before) == (0, 0, 2, True)
