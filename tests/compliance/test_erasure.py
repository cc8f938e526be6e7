"""Erasure: nothing of the user's personal values is left in any table or Redis key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from tests.support.events_helpers import mission_submitted, relay_until_published, rows
from tests.support.harness import _plain_dsn
from tests.support.session_helpers import book

ERASE = "/api/v1/admin/users/{}/erase"


async def _programme(client, factory):
    tag = uuid.uuid4().hex[:10]
    mentor = await factory.mentor()
    mentee = await factory.mentee(name=f"Zelda Quux{tag}", email=f"zelda.{tag}@school.test",
                                  interests=[f"origami{tag}"])
    await factory.assign(mentor, mentee)
    service = await factory.user("service")
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0,
                                                             microsecond=0)
    booked = await book(client, factory.headers(mentor), mentee, starts,
                        agenda=f"Talk with Zelda Quux{tag} about her origami{tag}")
    assert booked.status_code == 201, booked.text
    flagged = await client.post("/api/v1/mentor/flags", headers=factory.headers(mentor), json={
        "mentee_id": str(mentee.id), "severity": "high", "category": "wellbeing",
        "note": f"Zelda Quux{tag} seems low"})
    assert flagged.status_code == 201, flagged.text
    posted = await client.post("/api/v1/events", headers=factory.headers(service),
                               json=mission_submitted(mentee.id))
    assert posted.status_code == 202, posted.text
    return mentor, mentee, service, booked.json(), [mentee.name, mentee.email, f"origami{tag}"]


async def _tables_holding(superuser_dsn: str, values: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(superuser_dsn)
    try:
        tables = [r["table_name"] for r in await connection.fetch(
            "select table_name from information_schema.tables "
            "where table_schema = 'public' and table_type = 'BASE TABLE'")]
        found = {}
        for table in tables:
            count = await connection.fetchval(
                f'select count(*) from "{table}" t where '
                + " or ".join(f"strpos(row_to_json(t)::text, ${i + 1}) > 0"
                              for i in range(len(values))), *values)
            if count:
                found[table] = count
        return found
    finally:
        await connection.close()


async def _redis_holding(settings, values: list[str], user_id) -> list[str]:
    """Keys of this deployment that name the user or hold one of the values (any type, raw
    bytes: arq's job payloads are pickles)."""
    raw = Redis.from_url(settings.redis_url)
    hits = []
    try:
        async for key in raw.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
            name = key.decode()
            kind = (await raw.type(key)).decode()
            if kind == "stream":
                dump = repr(await raw.xrange(key))
            elif kind == "hash":
                dump = repr(await raw.hgetall(key))
            elif kind == "string":
                dump = repr(await raw.get(key))
            elif kind == "zset":
                dump = repr(await raw.zrange(key, 0, -1))
            else:
                dump = ""
            names_user = user_id is not None and str(user_id) in name
            if names_user or any(value in dump for value in values):
                hits.append(name)
    finally:
        await raw.aclose()
    return hits


async def test_erasure_leaves_no_personal_value_anywhere(client, factory, system_db, redis,
                                                         settings, servers):
    mentor, mentee, service, session, personal = await _programme(client, factory)
    ids = [r.id for r in await rows(system_db, "select id from outbox_events where "
                                                "published_at is null")]
    await relay_until_published(system_db, redis, settings, ids)  # streams hold copies
    superuser = _plain_dsn(servers.database_url)
    assert await _tables_holding(superuser, personal)  # the scan does find them before

    admin = await factory.user("admin")
    response = await client.post(ERASE.format(mentee.id), headers=factory.headers(admin))
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == str(mentee.id)

    assert await _tables_holding(superuser, personal) == {}
    [status] = [r.status for r in await rows(system_db, "select status from sessions where "
                                                        "id = :id", id=uuid.UUID(session["id"]))]
    assert status == "cancelled"
    assert await rows(system_db, "select id from assignments where mentee_id = :id and "
                                 "ended_at is null", id=mentee.id) == []
    [erased] = await rows(system_db, "select data from outbox_events where type = "
                                     "'user.erased' and data->>'user_id' = :id",
                          id=str(mentee.id))
    assert erased.data["user_id"] == str(mentee.id)

    ids = [r.id for r in await rows(system_db, "select id from outbox_events where "
                                                "published_at is null")]
    await relay_until_published(system_db, redis, settings, ids)
    assert await _redis_holding(settings, personal, None) == []  # no value, in any key
    for _ in range(50):  # the route removes the user's keys right after its commit; the
        # relay may re-create their stream since (with scrubbed events only)
        if not [k for k in await _redis_holding(settings, [], mentee.id) if "stream" not in k]:
            break
        await asyncio.sleep(0.1)
    assert [k for k in await _redis_holding(settings, [], mentee.id) if "stream" not in k] == []

    again = await client.post(ERASE.format(mentee.id), headers=factory.headers(admin))
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
    upsert = await client.put(f"/api/v1/users/{mentee.id}", headers=factory.headers(service),
                              json={"email": "back.again@example.org", "name": "Back Again",
                                    "role": "mentee"})
    assert upsert.status_code == 409, upsert.text
    assert upsert.json()["code"] == "erased"


async def test_erasing_a_mentor_deletes_their_time_off_reasons(client, factory, servers):
    """Time-off reasons are free text written by the mentor: gone from the table and from
    the audit trail's copies, with the mentor's name, whatever else the text says."""
    tag = uuid.uuid4().hex[:10]
    mentor = await factory.mentor(name=f"Quentin Vasquez{tag}")
    starts = datetime.now(UTC) + timedelta(days=5)
    for reason in (f"dentist appointment {tag}", f"Quentin Vasquez{tag} on leave"):
        created = await client.post("/api/v1/mentor/time-off", headers=factory.headers(mentor),
                                    json={"starts_at": starts.isoformat(),
                                          "ends_at": (starts + timedelta(hours=2)).isoformat(),
                                          "reason": reason})
        assert created.status_code == 201, created.text
        starts += timedelta(days=1)
    superuser = _plain_dsn(servers.database_url)
    before = await _tables_holding(superuser, [tag])
    assert {"mentor_time_off", "audit_log"} <= set(before)  # the scan does find them before
    admin = await factory.user("admin")
    exported = await client.get(f"/api/v1/admin/users/{mentor.id}/export",
                                headers=factory.headers(admin))
    assert len(exported.json()["data"]["mentor_time_off"]) == 2

    response = await client.post(ERASE.format(mentor.id), headers=factory.headers(admin))
    assert response.status_code == 200, response.text
    assert await _tables_holding(superuser, [tag]) == {}
    connection = await asyncpg.connect(superuser)
    try:  # the periods stay (they were the mentor's calendar), the text goes
        assert await connection.fetchval(
            "select count(*) from mentor_time_off where mentor_id = $1 and reason is null",
            mentor.id) == 2
    finally:
        await connection.close()


async def test_only_admins_erase_and_unknown_is_404(client, factory):
    mentee = await factory.mentee()
    for role in ("director", "mentor", "service", "mentee"):
        caller = await factory.user(role)
        response = await client.post(ERASE.format(mentee.id), headers=factory.headers(caller))
        assert response.status_code == 403, role
    admin = await factory.user("admin")
    missing = await client.post(ERASE.format(uuid.uuid4()), headers=factory.headers(admin))
    assert missing.status_code == 404
