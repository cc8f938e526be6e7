"""A session still `scheduled` two hours after its end opens one `session_followup` item;
completing it closes that item instead of opening another; history written after the fact
(and sessions that ended before the migration) never opens one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from app.models import OutboxEvent, WorkItem
from app.services.sessions.followups import completion_key, sweep_followups, sweep_key
from app.services.sessions.jobs import sweep_session_followups


async def items_for(factory, session_id) -> list[WorkItem]:
    async def load(session):
        return list(await session.scalars(select(WorkItem).where(
            WorkItem.source_key.in_([sweep_key(session_id), completion_key(session_id)]))))
    return await factory.run(load)


async def sweep(system_db, settings, now):
    async with system_db.transaction(None) as session:
        return await sweep_followups(session, settings=settings, now=now)


async def a_session_that_ended(factory, system_db, *, hours_ago: float):
    """A session that ended `hours_ago`, with the follow-up timer that booking it (before it
    ended, after this shipped) armed: written directly, as tests cannot wait for hours."""
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    end = datetime.now(UTC) - timedelta(hours=hours_ago)
    row = await factory.session(mentor, mentee, starts_at=end - timedelta(hours=1))
    async with system_db.transaction(None) as session:
        await session.execute(text(
            "insert into session_timers (session_id, kind, due_at) "
            "values (:id, 'followup', :due)"), {"due": end + timedelta(hours=2), "id": row.id})
    return mentor, mentee, row


async def test_sweep_opens_one_item_after_two_hours(factory, system_db, settings):
    mentor, mentee, row = await a_session_that_ended(factory, system_db, hours_ago=1.5)
    now = datetime.now(UTC)
    await sweep(system_db, settings, now)
    assert await items_for(factory, row.id) == []  # 1.5 h after the end: not yet
    result = await sweep(system_db, settings, now + timedelta(hours=1))
    assert result.opened >= 1
    await sweep(system_db, settings, now + timedelta(hours=2))
    (item,) = await items_for(factory, row.id)
    assert (item.kind, item.status, item.mentee_id) == ("session_followup", "open", mentee.id)
    assert item.source_key == sweep_key(row.id)

    async def created_events(session):
        return list(await session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "workqueue.item_created",
            OutboxEvent.data["item_id"].astext == str(item.id))))
    (event,) = await factory.run(created_events)
    assert event.recipients == [mentor.id]


async def test_completing_closes_the_swept_item_instead_of_opening_another(
        client, factory, system_db, settings):
    mentor, mentee, row = await a_session_that_ended(factory, system_db, hours_ago=3)
    await sweep(system_db, settings, datetime.now(UTC))
    response = await client.patch(f"/api/v1/mentor/sessions/{row.id}",
                                  headers=factory.headers(mentor),
                                  json={"status": "completed", "mentor_notes": "Went well"})
    assert response.status_code == 200, response.text
    (item,) = await items_for(factory, row.id)
    assert item.source_key == sweep_key(row.id) and item.status == "done"
    assert item.completed_by == mentor.id


async def test_completing_before_the_sweep_opens_the_usual_item_and_no_other(
        client, factory, system_db, settings):
    mentor, mentee, row = await a_session_that_ended(factory, system_db, hours_ago=3)
    response = await client.patch(f"/api/v1/mentor/sessions/{row.id}",
                                  headers=factory.headers(mentor), json={"status": "no_show"})
    assert response.status_code == 200
    await sweep(system_db, settings, datetime.now(UTC))
    (item,) = await items_for(factory, row.id)
    assert item.source_key == completion_key(row.id) and item.status == "open"


async def test_history_that_already_ended_never_opens_an_item(factory, system_db, settings):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    old = await factory.session(mentor, mentee,
                                starts_at=datetime.now(UTC) - timedelta(days=2))
    await sweep(system_db, settings, datetime.now(UTC) + timedelta(days=1))
    assert await items_for(factory, old.id) == []


async def test_concurrent_sweeps_open_each_item_once(factory, system_db, settings):
    rows = [(await a_session_that_ended(factory, system_db, hours_ago=3))[2]
            for _ in range(6)]
    await asyncio.gather(*(sweep_session_followups({"db": system_db, "settings": settings})
                           for _ in range(4)))
    for row in rows:
        assert len(await items_for(factory, row.id)) == 1
